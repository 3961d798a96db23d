// The signaling connection: one WebSocket at a time, joined to one channel, reconnecting by
// itself. Protocol: docs/signaling.md (join first with the token; never a token in the URL).
//
// Reconnect rule (the same as the headset client's):
// - the socket closes or goes quiet (no message at all for QUIET_MS = 5 s although we ping every
//   PING_MS = 2 s: a frozen or unreachable server is noticed within 5 s of its last message), or
//   the network comes back ("online"): a new socket joins again with the stored session_id, so
//   within the server's grace period the session is resumed (nobody sees us leave); after it,
//   the server starts a new session for the same user and device (no ghost participant);
// - retries back off 0.25, 0.5, 1, 2, 2 … s (capped small, so we are back within ~3 s of the
//   network or the server returning); "online" retries at once;
// - close codes 4401/4403 (token or channel refused) and 4409 (replaced by a newer join of this
//   device) end it: retrying cannot help;
// - a node of a cluster being drained sends `migrate` {url}: a fresh join (no session_id) on a
//   new socket, to `url` when it is this page's own origin (every node behind one reverse proxy;
//   the page's CSP allows no other), else to the same address after the back-off, where the
//   proxy sends it to a node that takes joins. A join refused with `cluster_unavailable` or
//   `node_draining` (the server closes with 1013) is retried after the back-off as well.
// - a node cut off from the rest of the cluster sends `degraded` {channel}: the same as a
//   `migrate` without a url (a fresh join after the back-off, which the proxy sends elsewhere).
//
// Events: "state" {state}, "joined" {message, reconnected}, "lost" {why: closed | quiet |
// timeout}, "message" {message}, "stopped" {reason, code, message}.

// How fast a dead server is noticed; the headset client has the same rule and figures
// (clients/headset/voice_client/liveness.py). While joined: a ping every PING_MS (the server
// answers pong at once, ahead of any slow work); any message counts as life; QUIET_MS without
// one and the socket is given up (the console's signaling is this connection too), once a ping
// has also gone unanswered for QUIET_MS - PING_MS: normally the same moment, but a timer that
// fires late (a hidden tab, a phone waking up) pings first instead of dropping a live socket.
export const PING_MS = 2000;
export const QUIET_MS = 5000;
const PROBE_MS = 2500;
const OPEN_TIMEOUT_MS = 5000;
const JOIN_TIMEOUT_MS = 6000;
const BACKOFF_MS = [250, 500, 1000, 2000];
const FATAL_CLOSE = new Set([4401, 4403, 4409]);

// [pure] When the socket is dead if nothing comes, given when the server was last heard and
// when the first ping since then left (null: none yet, so not before one has).
function deadline(lastHeard, asked) {
  return asked === null ? Infinity : Math.max(lastHeard + QUIET_MS, asked + QUIET_MS - PING_MS);
}

// [pure] The heartbeat at `now` while joined (lastPing: our last ping; asked: the first ping
// since the server's last message, or null): dead, or whether to ping now and how long until
// the next look (the next ping or the deadline, whichever comes first).
export function heartbeat(now, lastHeard, lastPing, asked) {
  if (now >= deadline(lastHeard, asked)) return { dead: true, ping: false, wait: 0 };
  const late = asked === null && now - lastHeard >= QUIET_MS; // silence never asked about
  const ping = late || now - lastPing >= PING_MS;
  const nextPing = (ping ? now : lastPing) + PING_MS;
  const until = deadline(lastHeard, ping && asked === null ? now : asked);
  return { dead: false, ping, wait: Math.min(nextPing, until) - now };
}

// [pure] The signaling URL of a node a `migrate` names, when the page may go there (its own
// origin), else null (the same address is used again).
export function allowedNode(url, loc = window.location) {
  if (typeof url !== "string" || url === "") return null;
  let target;
  try {
    target = new URL(url, loc.href);
  } catch {
    return null;
  }
  if (target.origin !== new URL(loc.href).origin) return null;
  return signalingUrl(target);
}

export function signalingUrl(loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${loc.host}/ws`;
}

export class Connection extends EventTarget {
  constructor({ url, deviceId, token }) {
    super();
    this.url = url;
    this.deviceId = deviceId;
    this.token = token;
    this.channel = null;
    this.sessionId = null;
    this.sessionChannel = null;
    this.state = "idle"; // idle | connecting | joined | reconnecting | stopped
    this.ws = null;
    this.attempt = 0;
    this.timer = null;
    this.deadlineTimer = null;
    this.lastHeard = 0;
    this.lastPing = 0;
    this.asked = null; // the first ping since the server's last message
    this.pendingChannel = null;
    this.lostSince = null;
    this.seq = 0;
    this.heartbeatTimer = null;
    this.onOnline = () => this.networkBack();
  }

  // ------------------------------------------------------------------ public
  start(channel) {
    this.channel = channel;
    this.attempt = 0;
    window.addEventListener("online", this.onOnline);
    this.beat();
    this.connect();
  }

  switchChannel(channel) {
    if (channel === this.channel) return;
    if (this.state === "joined") {
      this.pendingChannel = channel;
      this.send({ type: "leave", id: "switch" });
    } else {
      this.channel = channel;
      this.sessionId = null;
    }
  }

  // Leave the channel again with a fresh session (the media transport was lost).
  rejoin() {
    if (this.state !== "joined") return;
    this.pendingChannel = this.channel;
    this.send({ type: "leave", id: "rejoin" });
  }

  stop(reason = "left") {
    if (this.state === "stopped") return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.state === "joined") {
      this.send({ type: "leave" });
    }
    this.finish(reason);
  }

  setToken(token) {
    this.token = token;
    if (this.state === "joined") this.send({ type: "refresh", token, id: `r${++this.seq}` });
  }

  send(message) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify({ v: 1, ...message }));
    return true;
  }

  // ------------------------------------------------------------------ socket
  connect() {
    clearTimeout(this.timer);
    this.setState(this.lostSince === null ? "connecting" : "reconnecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.lost("closed");
      return;
    }
    this.ws = ws;
    this.arm(OPEN_TIMEOUT_MS);
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.arm(JOIN_TIMEOUT_MS);
      this.sendJoin(this.channel);
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastHeard = Date.now();
      this.asked = null;
      if (this.state === "joined") this.disarm(); // a probe answered
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg && typeof msg === "object") this.receive(msg);
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this.closed(ev.code);
    };
    ws.onerror = () => {};
  }

  sendJoin(channel) {
    const join = { type: "join", token: this.token, channel, device_id: this.deviceId, id: "join" };
    if (this.sessionId && this.sessionChannel === channel) join.session_id = this.sessionId;
    this.send(join);
  }

  // A deadline: when it passes before disarm(), the socket is given up and replaced.
  arm(ms) {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => this.lost("timeout"), ms);
  }

  disarm() {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
  }

  abandon() {
    this.disarm();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(4000, "reconnecting");
      } catch {
        /* already closed */
      }
    }
  }

  closed(code) {
    this.ws = null;
    if (this.state === "stopped") return;
    if (FATAL_CLOSE.has(code)) {
      const reason = code === 4409 ? "replaced" : "refused";
      this.finish(reason, { code });
      return;
    }
    this.lost("closed");
  }

  // The socket is gone (why: closed, quiet, timeout): a new one after the backoff.
  lost(why) {
    this.abandon();
    if (this.state === "stopped") return;
    if (this.lostSince === null) {
      this.lostSince = Date.now();
      this.dispatch("lost", { why });
    }
    this.setState("reconnecting");
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    const delay = base * (0.8 + 0.4 * Math.random());
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  networkBack() {
    if (this.state === "reconnecting") {
      this.attempt = 0;
      this.connect();
    } else if (this.state === "joined") {
      // the old socket may be dead without knowing it (Wi-Fi to LTE): prove it is alive
      this.send({ type: "ping", id: "probe" });
      this.arm(PROBE_MS);
    }
  }

  // The heartbeat (see heartbeat()): runs from start() until finish(), and looks at least every
  // PING_MS while not joined.
  beat() {
    if (this.state === "stopped") return;
    let wait = PING_MS;
    if (this.state === "joined") {
      const now = Date.now();
      const next = heartbeat(now, this.lastHeard, this.lastPing, this.asked);
      if (next.dead) {
        this.lost("quiet");
      } else {
        if (next.ping) {
          this.send({ type: "ping" });
          this.lastPing = now;
          if (this.asked === null) this.asked = now;
        }
        wait = next.wait;
      }
    }
    this.heartbeatTimer = setTimeout(() => this.beat(), wait);
  }

  // ------------------------------------------------------------------ messages
  receive(msg) {
    switch (msg.type) {
      case "joined": {
        const reconnected = this.lostSince !== null;
        this.disarm();
        this.sessionId = msg.session_id;
        this.sessionChannel = msg.channel && msg.channel.name;
        this.channel = this.sessionChannel || this.channel;
        this.attempt = 0;
        this.lostSince = null;
        this.lastHeard = Date.now();
        this.asked = null;
        this.setState("joined");
        this.dispatch("joined", { message: msg, reconnected });
        return;
      }
      case "left":
        if (this.pendingChannel !== null) {
          this.channel = this.pendingChannel;
          this.pendingChannel = null;
          this.sessionId = null;
          this.dispatch("message", { message: msg });
          this.setState("connecting");
          this.arm(JOIN_TIMEOUT_MS);
          this.sendJoin(this.channel);
          return;
        }
        if (msg.reason !== "left") this.finish(msg.reason || "left", { message: msg.reason });
        return;
      case "error":
        if (msg.fatal) {
          this.finish("error", { code: msg.code, message: msg.message });
          return;
        }
        break;
      case "pong":
        return;
      case "migrate":
        this.dispatch("message", { message: msg });
        this.migrate(msg.url);
        return;
      case "degraded": // this node is cut off from the cluster: a fresh join, after the back-off
        this.dispatch("message", { message: msg });
        this.migrate(null);
        return;
      default:
        break;
    }
    this.dispatch("message", { message: msg });
  }

  // Join again elsewhere (see the reconnect rule): a fresh session, after the back-off.
  migrate(url) {
    const target = allowedNode(url);
    if (target !== null) this.url = target;
    this.sessionId = null;
    this.lost("migrate");
  }

  finish(reason, extra = {}) {
    const was = this.state;
    this.state = "stopped";
    clearTimeout(this.timer);
    clearTimeout(this.heartbeatTimer);
    window.removeEventListener("online", this.onOnline);
    this.abandon();
    this.sessionId = null;
    if (was !== "stopped") {
      this.dispatch("state", { state: "stopped" });
      this.dispatch("stopped", { reason, ...extra });
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatch("state", { state });
  }

  dispatch(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
