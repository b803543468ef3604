// A fetch wrapper for the signed API: every request is signed (sign.js) at the moment it
// is sent, POSTs carry an Idempotency-Key, and a refusal (problem+json) becomes an
// ApiProblem with the problem's `status`, `code` and `detail`.

import { signRequest, sfString } from "./sign.js";

export class ApiProblem extends Error {
  constructor(status, code, detail, problem) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = "ApiProblem";
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.problem = problem;
  }
}

export function newIdempotencyKey() {
  return crypto.randomUUID();
}

/** The answer's JSON; an ApiProblem for any status >= 400. */
export async function answerOf(response) {
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch (error) {
    parsed = null;
  }
  if (!response.ok) {
    const code = parsed && typeof parsed.code === "string" ? parsed.code : `http_${response.status}`;
    const detail = parsed && typeof parsed.detail === "string" ? parsed.detail : text.slice(0, 200);
    throw new ApiProblem(response.status, code, detail, parsed);
  }
  return parsed;
}

/** Send one signed request with `identity` ({ keyId, privateKey }); resolves to the
 * answer's JSON (and `response` on `raw: true`). `origin` is the service's public origin. */
export async function signedFetch(identity, method, path, { json, body, contentType,
  idempotencyKey, origin = globalThis.location.origin, raw = false } = {}) {
  const headers = {};
  let payload = body ?? null;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    headers["content-type"] = "application/json";
  } else if (payload !== null) {
    headers["content-type"] = contentType ?? "application/octet-stream";
  }
  if (method.toUpperCase() === "POST") {
    headers["idempotency-key"] = sfString(idempotencyKey ?? newIdempotencyKey());
  }
  const url = new URL(path, origin).href;
  const signed = await signRequest({ method, url, headers, body: payload,
    keyId: identity.keyId, privateKey: identity.privateKey });
  const response = await fetch(url, { method, headers: signed, body: payload,
    credentials: "omit", cache: "no-store", redirect: "error" });
  if (raw) return response;
  return answerOf(response);
}

/** A client bound to one identity: `api.get(path)`, `api.post(path, json, options)`. */
export function createApi(identity, { origin = globalThis.location.origin } = {}) {
  return {
    get: (path) => signedFetch(identity, "GET", path, { origin }),
    post: (path, json, options = {}) => signedFetch(identity, "POST", path, { ...options, json, origin }),
    request: (method, path, options = {}) => signedFetch(identity, method, path, { origin, ...options }),
  };
}
