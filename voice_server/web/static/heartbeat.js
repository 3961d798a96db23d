// A dashboard WebSocket that notices a dead server: the alert banner's event stream, the live
// view and the console's live views use it (the console's signaling is the phone app's
// connection.js, with the same figures). From its creation, a {"type": "ping"} every PING_MS
// while open (the server answers {"type": "pong"}); any message counts as life, and QUIET_MS
// without one (opening included) means the socket is dead: it is dropped and `gone` runs, as for
// a close. A frozen server never finishes a closing handshake, so waiting for `close` could take
// a minute. `gone(code)` runs exactly once: the close code, or 4000 for a dead socket.
"use strict";
window.dashboardSocket = (() => {
  const PING_MS = 2000;
  const QUIET_MS = 5000;
  return (url, { open = () => {}, message = () => {}, gone = () => {} }) => {
    const ws = new WebSocket(url);
    let heard = Date.now();
    let timer = null;
    let over = false;
    const end = (code) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      gone(code);
    };
    const beat = () => {
      const now = Date.now();
      if (now - heard >= QUIET_MS) {
        try {
          ws.close(4000, "no answer");
        } catch (_) {
          // already closing
        }
        end(4000);
        return;
      }
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" }));
      timer = setTimeout(beat, Math.min(PING_MS, heard + QUIET_MS - now));
    };
    ws.addEventListener("open", () => {
      heard = Date.now();
      if (!over) open(ws);
    });
    ws.addEventListener("message", (event) => {
      heard = Date.now();
      if (!over) message(event);
    });
    ws.addEventListener("close", (event) => end(event.code));
    timer = setTimeout(beat, PING_MS);
    return ws;
  };
})();
