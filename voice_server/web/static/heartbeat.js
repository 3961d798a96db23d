// A dashboard WebSocket that notices a dead server: the alert banner's event stream, the live
// view and the console's live views use it (the console's signaling is the phone app's
// connection.js, with the same rule and figures). While open, a {"type": "ping"} every PING_MS
// (the server answers {"type": "pong"}); any message counts as life, and QUIET_MS without one
// means the socket is dead, once a ping has also gone unanswered for QUIET_MS - PING_MS
// (normally the same moment; a hidden tab's timer that fires a minute late pings first instead
// of dropping a live socket). A socket still opening after QUIET_MS is dead too. A dead socket
// is dropped and `gone` runs, as for a close: a frozen server never finishes a closing
// handshake, so waiting for `close` could take a minute. `gone(code)` runs exactly once: the
// close code, or 4000 for a dead socket.
"use strict";
window.dashboardSocket = (() => {
  const PING_MS = 2000;
  const QUIET_MS = 5000;
  return (url, { open = () => {}, message = () => {}, gone = () => {} }) => {
    const ws = new WebSocket(url);
    let heard = Date.now(); // the last message (or the socket's creation, then its opening)
    let asked = null; // the first ping since then
    let lastPing = 0;
    let timer = null;
    let over = false;
    const end = (code) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      gone(code);
    };
    const deadline = () => {
      if (ws.readyState !== WebSocket.OPEN) return heard + QUIET_MS;
      return asked === null ? Infinity : Math.max(heard + QUIET_MS, asked + QUIET_MS - PING_MS);
    };
    const beat = () => {
      const now = Date.now();
      if (now >= deadline()) {
        try {
          ws.close(4000, "no answer");
        } catch (_) {
          // already closing
        }
        end(4000);
        return;
      }
      const late = asked === null && now - heard >= QUIET_MS; // silence never asked about
      if (ws.readyState === WebSocket.OPEN && (late || now - lastPing >= PING_MS)) {
        ws.send(JSON.stringify({ type: "ping" }));
        lastPing = now;
        if (asked === null) asked = now;
      }
      const isOpen = ws.readyState === WebSocket.OPEN;
      const next = isOpen ? Math.min(lastPing + PING_MS, deadline()) : deadline();
      timer = setTimeout(beat, Math.max(0, next - Date.now()));
    };
    ws.addEventListener("open", () => {
      heard = Date.now();
      if (!over) open(ws);
    });
    ws.addEventListener("message", (event) => {
      heard = Date.now();
      asked = null;
      if (!over) message(event);
    });
    ws.addEventListener("close", (event) => end(event.code));
    timer = setTimeout(beat, PING_MS);
    return ws;
  };
})();
