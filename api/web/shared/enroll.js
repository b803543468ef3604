// Enrollment: make a fresh non-extractable Ed25519 key pair, prove possession by signing
// the redeem request with it (keyid = its thumbprint, as ledger/flows/enrollment says),
// register it with a one-time code, and keep the identity in IndexedDB.

import { base64, generateKeyPair, saveIdentity, thumbprint } from "./keys.js";
import { signedFetch } from "./api.js";

export const REDEEM_PATH = "/v1/enrollments/redeem";

/** Redeem `code`; resolves to the saved identity { keyId, principalId, role, deviceId,
 * privateKey, publicKey, publicKeyBase64 }; rejects with an ApiProblem (e.g.
 * enrollment_code_invalid) or a KeyError (no WebCrypto Ed25519). */
export async function enroll(code, { origin = globalThis.location.origin } = {}) {
  const pair = await generateKeyPair();
  const publicKeyBase64 = base64(pair.publicRaw);
  const proving = { keyId: await thumbprint(pair.publicRaw), privateKey: pair.privateKey };
  const answer = await signedFetch(proving, "POST", REDEEM_PATH, {
    json: { code: String(code).trim(), public_key: publicKeyBase64 },
    origin,
  });
  const identity = {
    keyId: answer.key_id,
    principalId: answer.principal_id,
    role: answer.role,
    deviceId: answer.device_id,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    publicKeyBase64,
  };
  await saveIdentity(identity);
  return identity;
}
