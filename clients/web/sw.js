// Service worker: lets the app be installed and open without a network. Network first, always:
// every request for the app's own files goes to the server, and the cached copy is used only
// when the server cannot be reached, so an update is picked up on the next load (never stuck
// on an old version). The signaling socket, the API and the metrics are never cached.
const CACHE = "voice-shell-v5";
const SHELL = [
  "./",
  "index.html",
  "app.css",
  "manifest.webmanifest",
  "icon.svg",
  "js/boot.js",
  "js/main.js",
  "js/i18n.js",
  "js/link.js",
  "js/session.js",
  "js/connection.js",
  "js/call.js",
  "js/audio.js",
  "js/cues.js",
  "js/vad.js",
  "js/gate-worklet.js",
  "js/ptt.js",
  "js/wakelock.js",
  "js/people.js",
  "js/diag.js",
  "js/emergency.js",
  "js/replay.js",
];

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(SHELL))
      .catch(() => undefined)
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin) return;
  if (/^\/(ws|api|metrics|healthz|readyz)(\/|$)/.test(url.pathname)) return;
  event.respondWith(
    fetch(req, { cache: "no-cache" })
      .then((res) => {
        if (res.ok) {
          const copy = res.clone();
          caches.open(CACHE).then((cache) => cache.put(req, copy));
        }
        return res;
      })
      .catch(() => caches.match(req).then((hit) => hit || Response.error())),
  );
});
