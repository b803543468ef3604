// RFC 9421 HTTP Message Signatures in the Village Ledger profile, as api/signatures.py
// verifies them (and examples/sign_without_client.py signs): one signature labelled and
// tagged "vledger" covering "@method" "@target-uri", plus "content-type" "content-digest"
// when there is a body, plus "idempotency-key" when that header is sent; parameters
// created, keyid, alg and tag, in that order; Content-Digest (RFC 9530) sha-256 of the
// exact body bytes. Sign at the moment the request leaves (created is checked: at most
// 300 s old, 60 s ahead).

import { base64 } from "./keys.js";

export const TAG = "vledger";
export const ALG = "ed25519";
const encoder = new TextEncoder();

/** RFC 9530 Content-Digest of the body's bytes: `sha-256=:<base64>:`. */
export async function contentDigest(bodyBytes) {
  const digest = await crypto.subtle.digest("SHA-256", bodyBytes);
  return `sha-256=:${base64(digest)}:`;
}

/** A Structured Field string (RFC 8941) of ASCII text without `"` or `\`. */
export function sfString(text) {
  if (!/^[\x20-\x7e]*$/.test(text) || /["\\]/.test(text)) {
    throw new Error("a Structured Field string here is printable ASCII without quotes");
  }
  return `"${text}"`;
}

/** The signature base (RFC 9421 section 2.5) and the Signature-Input parameters. */
export function signatureBase({ method, url, fields, keyId, created }) {
  const covered = ["@method", "@target-uri"];
  if ("content-type" in fields) covered.push("content-type", "content-digest");
  if ("idempotency-key" in fields) covered.push("idempotency-key");
  const list = covered.map((name) => `"${name}"`).join(" ");
  const params =
    `(${list});created=${created};keyid=${sfString(keyId)};alg="${ALG}";tag="${TAG}"`;
  const lines = covered.map((name) => {
    if (name === "@method") return `"@method": ${method.toUpperCase()}`;
    if (name === "@target-uri") return `"@target-uri": ${url}`;
    return `"${name}": ${fields[name]}`;
  });
  lines.push(`"@signature-params": ${params}`);
  return { base: lines.join("\n"), params };
}

/**
 * The headers to send (lower-case names): the given ones, Content-Digest with a body,
 * Signature-Input and Signature. `url` is the absolute URL the server sees (its public
 * origin + path and query); `body` a string or bytes (or null); `headers` holds
 * Content-Type with a body and Idempotency-Key (already a Structured Field string) on a POST.
 */
export async function signRequest({ method, url, headers = {}, body = null, keyId, privateKey,
  created = Math.floor(Date.now() / 1000) }) {
  const fields = {};
  for (const [name, value] of Object.entries(headers)) fields[name.toLowerCase()] = value;
  const bytes = body === null ? null : typeof body === "string" ? encoder.encode(body) : body;
  if (bytes !== null && bytes.length > 0 && !("content-type" in fields)) {
    throw new Error("a request with a body needs a Content-Type");
  }
  if ("content-type" in fields) fields["content-digest"] = await contentDigest(bytes ?? new Uint8Array());
  const { base, params } = signatureBase({ method, url, fields, keyId, created });
  const signature = await crypto.subtle.sign({ name: "Ed25519" }, privateKey, encoder.encode(base));
  fields["signature-input"] = `${TAG}=${params}`;
  fields["signature"] = `${TAG}=:${base64(signature)}:`;
  return fields;
}
