// Device keys that never leave the browser: a WebCrypto Ed25519 key pair whose private
// half is NOT extractable, kept (as a CryptoKey, which IndexedDB stores by structured
// clone) in IndexedDB with what the server said about it (key id, principal, role,
// device). Nothing here ever sees the private key's bytes.

const DB_NAME = "vledger";
const DB_VERSION = 1;
const STORE = "identity";
const SLOT = "device";

/** An Error with a stable `code` (and `detail`), like the API's problems. */
export class KeyError extends Error {
  constructor(code, detail) {
    super(detail);
    this.name = "KeyError";
    this.code = code;
    this.detail = detail;
  }
}

export const UNSUPPORTED =
  "This browser cannot make Ed25519 keys with WebCrypto (Chromium 137 or newer, Firefox 129 " +
  "or newer and Safari 17 or newer can). Update the browser to use this app.";

/** Resolves when WebCrypto Ed25519 works here; else rejects with KeyError
 * `webcrypto_ed25519_unavailable` and a sentence a person can act on. */
export async function requireEd25519() {
  if (!globalThis.isSecureContext || !globalThis.crypto || !crypto.subtle) {
    throw new KeyError(
      "webcrypto_unavailable",
      "WebCrypto needs a secure context: open this app over HTTPS (or on 127.0.0.1).",
    );
  }
  try {
    await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  } catch (error) {
    throw new KeyError("webcrypto_ed25519_unavailable", UNSUPPORTED);
  }
}

export function base64(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text);
}

/** A new key pair: `privateKey` cannot be exported; `publicRaw` is the 32 raw bytes. */
export async function generateKeyPair() {
  await requireEd25519();
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, publicRaw };
}

/** The key id a redeem request is signed with: "enroll-" + base64url(SHA-256(raw key)). */
export async function thumbprint(publicRaw) {
  const digest = await crypto.subtle.digest("SHA-256", publicRaw);
  const url = base64(digest).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
  return "enroll-" + url;
}

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new KeyError("storage_unavailable", String(request.error)));
  });
}

async function inStore(mode, act) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = act(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request.result);
      tx.onerror = () => reject(new KeyError("storage_unavailable", String(tx.error)));
      tx.onabort = () => reject(new KeyError("storage_unavailable", String(tx.error)));
    });
  } finally {
    db.close();
  }
}

/** Keep the enrolled identity: { keyId, principalId, role, deviceId, privateKey,
 * publicKey, publicKeyBase64 } (the CryptoKeys stay non-extractable in storage). */
export function saveIdentity(identity) {
  return inStore("readwrite", (store) => store.put(identity, SLOT));
}

/** The identity kept by saveIdentity, or null. */
export async function loadIdentity() {
  const found = await inStore("readonly", (store) => store.get(SLOT));
  return found ?? null;
}

/** Forget the identity (the server's key stays registered until it is revoked). */
export function forgetIdentity() {
  return inStore("readwrite", (store) => store.delete(SLOT));
}
