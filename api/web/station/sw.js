// The station app's service worker (the Offline Cookbook's patterns):
// - the app shell (this app's files, the shared signer, words, currencies): "cache, then
//   network", precached at install, so after one visit the app opens with no network;
// - API reads (GET /v1/...): network first, falling back to the last answer kept,
//   marked `x-station-stale: 1` so the page can say the figures are old;
// - writes (anything but GET) are never cached nor answered from a cache.
// The cache's name carries a digest of the shell (filled in by the server).

const VERSION = "__SHELL_VERSION__";
const SHELL = `station-shell-${VERSION}`;
const READS = "station-reads-v1";
const SHELL_FILES = [
  "/station/", "/station/app.js", "/station/enroll.js", "/station/home.js", "/station/cashin.js",
  "/station/cashout.js", "/station/villagers.js", "/station/orders.js", "/station/float.js",
  "/station/history.js", "/station/queue.js",
  "/station/station.css", "/web/shared/dom.js", "/web/shared/money.js", "/web/shared/i18n.js",
  "/web/shared/currencies.json", "/web/i18n/station/en.json", "/web/i18n/station/sw.json",
  "/web/shared/keys.js", "/web/shared/sign.js", "/web/shared/api.js", "/web/shared/enroll.js",
];
const SHELL_PATHS = new Set(SHELL_FILES);

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL)
    .then((cache) => cache.addAll(SHELL_FILES.map((path) => new Request(path, { cache: "reload" }))))
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
