// The station app's service worker (the Offline Cookbook's patterns):
// - the app shell (this app's files, the shared signer, words, currencies): "cache, then
//   network", precached at install, so after one visit the app opens with no network;
// - API reads (GET /v1/...): network first, falling back to the last answer kept,
//   marked `x-station-stale: 1` so the page can say the figures are old;
// - writes (anything but GET) are never cached nor answered from a cache.
//
// The server fills in MANIFEST (every shell path -> the SHA-256 of the body it serves
// now) and VERSION (a digest of the manifest, which names the cache). The precache reads
// each file through the HTTP cache first (the page has just loaded most of them: no
// second download on 2G), and keeps it only if its digest is this version's; a copy that
// is not (an older file still fresh in the HTTP cache after an upgrade) is fetched again
// from the network, and if that is not this version either the install fails (the old
// worker stays; the next visit tries again). So no stale file is ever served as this
// version's shell.

const VERSION = "__SHELL_VERSION__";
const MANIFEST = __SHELL_MANIFEST__;
const SHELL = `station-shell-${VERSION}`;
const READS = "station-reads-v1";
const SHELL_PATHS = new Set(Object.keys(MANIFEST));

function hex(buffer) {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function isThisVersion(answer, path) {
  if (!answer.ok) return false;
  const digest = await crypto.subtle.digest("SHA-256", await answer.clone().arrayBuffer());
  return hex(digest) === MANIFEST[path];
}

async function precacheOne(cache, path) {
  let answer = await fetch(path, { credentials: "same-origin" });
  if (!(await isThisVersion(answer, path))) {
    answer = await fetch(path, { credentials: "same-origin", cache: "reload" });
    if (!(await isThisVersion(answer, path))) throw new Error(`${path} is not of shell ${VERSION}`);
  }
  await cache.put(path, answer);
}

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL)
    .then((cache) => Promise.all([...SHELL_PATHS].map((path) => precacheOne(cache, path))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names
      .filter((name) => name.startsWith("station-shell-") && name !== SHELL)
      .map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

async function shellFirst(request, path) {
  const cached = await caches.match(path, { cacheName: SHELL });
  return cached || fetch(request);
}

async function networkFirst(request) {
  const cache = await caches.open(READS);
  try {
    const answer = await fetch(request);
    if (answer.ok) await cache.put(request, answer.clone());
    return answer;
  } catch (error) {
    const kept = await cache.match(request);
    if (!kept) throw error;
    const headers = new Headers(kept.headers);
    headers.set("x-station-stale", "1");
    return new Response(await kept.blob(), { status: kept.status, headers });
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || request.method !== "GET") return;
  if (url.pathname.startsWith("/v1/")) {
    event.respondWith(networkFirst(request));
  } else if (SHELL_PATHS.has(url.pathname) && !url.search) {
    event.respondWith(shellFirst(request, url.pathname));
  }
});
