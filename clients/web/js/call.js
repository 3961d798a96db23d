// The media side: one RTCPeerConnection per server offer (docs/signaling.md, SDP contract).
// The server offers; we answer. mid "0" carries our microphone (replaceTrack + sendonly after
// applying the offer, else the browser answers it inactive); mids "1".."N" are the talk slots we
// hear. A later plain offer means "start over" (the server lost our transport): the old
// connection is closed first. An offer with renegotiate: true (more slot m-lines for another
// channel heard) is applied to the live connection instead: audio already flowing goes on, and
// the answer echoes its revision. iceServers holds only the TURN relay the server names in
// `joined.ice_servers` (its own coturn, time-limited credentials): no public STUN server is ever
// contacted.
//
// Network changes (Wi-Fi -> LTE, a moved address): the call asks the server for an ICE restart
// ("restart" {why}; the server answers with offer {renegotiate, restart}: new ICE credentials
// applied to the same connection, DTLS kept) on `online`, on a connection-type change, when ICE
// reports disconnected/failed, and on a media stall (we send voice but nothing at all has come
// back for STALL_MS: the server keeps a talker posted every 100 ms; or someone is talking to us
// but nothing has come for LISTEN_STALL_MS: a listener's path died; sooner when a second network
// is already checked). At most one request per RESTART_MIN_MS (the server refuses more often
// with ice_restart_too_often).
//
// Events: "answer" {sdp, revision}, "track" {mid, track}, "media" {state}, "failed" {},
// "restart" {why}, "candidate" {address} (each local ICE candidate gathered; diagnostics).

const GATHER_TIMEOUT_MS = 2000;
// with a TURN relay: its TLS handshake and allocation come before the relay candidate
const RELAY_GATHER_TIMEOUT_MS = 6000;
const DISCONNECTED_GRACE_MS = 5000;
// A media stall: we have sent voice (voiceWentOut: not DTX silence) for STALL_MS without a byte
// back. While a participant sends voice the server sends it an RTCP keepalive every 100 ms
// (voice_server/media/plane.py KEEPALIVE_SECONDS), so STALL_MS is four of them missed; it is also
// below the server's 600 ms talk hangover, so the restart reaches the server while our burst is
// still on and the server holds it across the restart (RESTART_HOLD_MS there).
const STALL_MS = 400;
// A listener's stall: the signaling says someone is talking to us (expectsAudio) but no byte has
// come for LISTEN_STALL_MS. While anyone holds a slot in a channel we hear, the server sends us a
// keepalive every 250 ms too (voice_server/media/plane.py), which covers the DTX pauses inside a
// talk and a vanished talker's 600 ms hangover (its talk_stopped ends our expecting; a talker
// whose own network changed keeps its burst across its ICE restart, so a listener who lost its
// path at the same moment goes on expecting).
const LISTEN_STALL_MS = 600;
// With a second network (a pair from another local address than the selected pair's, not failed:
// a phone's LTE kept up while on Wi-Fi), a restart moves the call at once (the server's candidate
// priority rises with each ICE generation, voice_server/media/sdp.py, so the first new pair that
// works wins), so a listener's stall is acted on sooner: two missed keepalives (a needless
// restart on the same network changes nothing we hear).
const BACKUP_STALL_MS = 400;
// The stall watch samples the stats this often while voice goes out or someone talks to us (a
// stall is noticed at most a sample late), else every IDLE_WATCH_MS (a phone on all day).
const WATCH_MS = 100;
const IDLE_WATCH_MS = 250;
// Voice goes out: at least half the 50 packets a second of 20 ms Opus frames (DTX silence sends
// ~2.5 a second), counted over VOICE_WINDOW_MS at least (the browser's packetsSent moves in
// uneven steps: 6, 4, 6, 4 over successive 100 ms samples while talking).
const VOICED_PER_SECOND = 25;
const VOICE_WINDOW_MS = 200;

export const RESTART_MIN_MS = 3000;
// The receive jitter buffer's requested hold time (ms) for every talk slot. In Chromium's WebRTC
// this is a floor under NetEq's own target (the "base minimum delay"), not a cap: NetEq still
// raises its target when packets arrive with real jitter (Wi-Fi, LTE). 0 asks for no extra
// holding beyond what NetEq estimates the network needs.
export const RECEIVE_JITTER_TARGET_MS = 0;

// Ask for a low receive jitter buffer where the browser lets us: `jitterBufferTarget` (ms;
// Chromium, checked in 156), else the older Chromium `playoutDelayHint` (seconds). Measured with
// `bench latency`: no change on loopback, where NetEq's own target (~60 ms) is above the floor.
export function lowerJitterBuffer(receiver, targetMs = RECEIVE_JITTER_TARGET_MS) {
  if (!receiver) return;
  try {
    if ("jitterBufferTarget" in receiver) receiver.jitterBufferTarget = targetMs;
    else if ("playoutDelayHint" in receiver) receiver.playoutDelayHint = targetMs / 1000;
  } catch (_) {
    // an out-of-range value or a browser that refuses the hint: keep its default
  }
}

// The stall watch's state: the recent samples [at, packets sent] (the voice window), since when
// voice goes out or someone talks to us (0: neither), and the last received byte count with when
// it changed (where the browser gives no lastPacketReceivedTimestamp).
export function newWatch() {
  return { samples: [], since: 0, received: 0, rxAt: 0 };
}

// Whether our voice went out over the last VOICE_WINDOW_MS or so (from the newest sample at
// least that old, else the oldest kept): enough packets for the time between.
export function voiceWentOut(w, sent, now) {
  let ref = null;
  for (const s of w.samples) if (now - s[0] >= VOICE_WINDOW_MS || !ref) ref = s;
  if (!ref || now <= ref[0]) return false;
  return sent - ref[1] >= Math.max(2, Math.ceil((VOICED_PER_SECOND * (now - ref[0])) / 1000));
}

// How long the stall clock may run before a restart: a talker's keepalives are due sooner than a
// listener's audio; sooner still with a second network checked (`backup`).
export function stallLimitMs(voiced, backup) {
  if (backup) return BACKUP_STALL_MS;
  return voiced ? STALL_MS : LISTEN_STALL_MS;
}

// One sample of the watch: `quietMs` is how long ago the last packet came on the selected pair
// (null: unknown, then a change of `received` bytes tells). Returns {voiced, stalled}: stalled
// when voice goes out or someone talks to us (`expecting`), and nothing has come for the limit,
// counted from when that began at the earliest (a talk starting after a long silence is no stall).
export function watchSample(w, { now, sent, received, quietMs, expecting, backup }) {
  const voiced = voiceWentOut(w, sent, now);
  w.samples.push([now, sent]);
  while (w.samples.length > 2 && now - w.samples[1][0] >= VOICE_WINDOW_MS) w.samples.shift();
  if (received !== w.received || !w.rxAt) w.rxAt = now;
  w.received = received;
  if (!voiced && !expecting) {
    w.since = 0;
    return { voiced, stalled: false };
  }
  if (!w.since) w.since = now;
  const quiet = Math.min(quietMs ?? now - w.rxAt, now - w.since);
  if (quiet < stallLimitMs(voiced, backup)) return { voiced, stalled: false };
  w.since = now; // asked: the next ask waits a full limit again
  return { voiced, stalled: true };
}

// How long ago the selected pair last received a packet, by the report's own clock (null where
// the browser does not say).
export function quietMs(report) {
  const pair = selectedPair(report);
  const last = pair ? pair.lastPacketReceivedTimestamp : undefined;
  return typeof last === "number" && last > 0 ? Math.max(0, pair.timestamp - last) : null;
}

// The transport's selected candidate pair in a stats report (null while none).
function selectedPair(report) {
  let pair = null;
  report.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId) || null;
  });
  return pair;
}

// Whether a stats report shows a path from another local address than the selected pair's that
// has not failed (a relay candidate is no other network: it may run over the same one). Not
// only a succeeded one: Chromium may leave a second network's pair unchecked ("waiting") for
// seconds once a pair is selected, and the restart checks it anyway.
export function hasBackupNetwork(report) {
  const selected = selectedPair(report);
  const local = selected ? report.get(selected.localCandidateId) : null;
  if (!local) return false;
  let backup = false;
  report.forEach((s) => {
    if (s.type !== "candidate-pair" || s.state === "failed" || s.id === selected.id) return;
    const other = report.get(s.localCandidateId);
    if (other && other.candidateType !== "relay" && other.address && other.address !== local.address) backup = true;
  });
  return backup;
}

function gathered(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class Call extends EventTarget {
  constructor() {
    super();
    this.pc = null;
    this.generation = 0;
    this.sendTrack = null;
    this.disconnectTimer = null;
    this.iceServers = [];
    this.lastRestart = 0;
    this.watch = newWatch();
    this.expectsAudio = () => false; // the app: whether someone is talking to us now
    this.onNetwork = () => this.requestRestart("network");
    window.addEventListener("online", this.onNetwork);
    if (navigator.connection) navigator.connection.addEventListener("change", this.onNetwork);
    this.scheduleWatch(IDLE_WATCH_MS);
  }

  scheduleWatch(ms) {
    setTimeout(async () => {
      let active = false;
      try {
        active = await this.watchStall();
      } finally {
        this.scheduleWatch(active ? WATCH_MS : IDLE_WATCH_MS);
      }
    }, ms);
  }

  requestRestart(why) {
    if (!this.pc || this.pc.connectionState === "new") return;
    const now = Date.now();
    if (now - this.lastRestart < RESTART_MIN_MS) return;
    this.lastRestart = now;
    this.emit("restart", { why });
  }

  // A media stall: our microphone's voice goes out (voiceWentOut) but no packet at all has come
  // back for STALL_MS (the server's keepalives come every 100 ms to a participant sending voice),
  // or someone talks to us and nothing has come for LISTEN_STALL_MS (watchSample). Returns
  // whether either held (the next sample comes sooner).
  async watchStall() {
    const pc = this.pc;
    if (!pc || pc.connectionState === "new") return false;
    let sent = 0;
    let received = 0;
    let backup = false;
    let quiet = null;
    try {
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === "outbound-rtp" && s.kind === "audio") sent += s.packetsSent || 0;
        if (s.type === "transport") received += s.bytesReceived || 0;
      });
      backup = hasBackupNetwork(report);
      quiet = quietMs(report);
    } catch (_) {
      return false;
    }
    if (pc !== this.pc) return false;
    const expecting = this.expectsAudio();
    const now = Date.now();
    const { voiced, stalled } = watchSample(this.watch, { now, sent, received, quietMs: quiet, expecting, backup });
    if (stalled) this.requestRestart(voiced ? "stall" : "listen_stall");
    return voiced || expecting;
  }

  // The TURN relays of `joined.ice_servers` for the next peer connection: well-formed entries
  // only ({urls: [TURN URLs], username, credential}).
  setIceServers(list) {
    const ok = (u) => typeof u === "string" && /^turns?:/.test(u);
    this.iceServers = (Array.isArray(list) ? list : [])
      .filter((s) => s && Array.isArray(s.urls) && s.urls.every(ok)
        && typeof s.username === "string" && typeof s.credential === "string")
      .map((s) => ({ urls: s.urls.slice(0, 4), username: s.username, credential: s.credential }))
      .slice(0, 2);
  }

  setSendTrack(track) {
    this.sendTrack = track;
    const sender = this.micSender();
    if (sender) sender.replaceTrack(track).catch(() => {});
  }

  micSender() {
    if (!this.pc) return null;
    const t = this.pc.getTransceivers().find((x) => x.mid === "0");
    return t ? t.sender : null;
  }

  async handleOffer(sdp, renegotiate = false, revision = null) {
    if (renegotiate && this.pc) return this.renegotiate(sdp, revision);
    this.close();
    const generation = ++this.generation;
    const iceServers = this.iceServers;
    const pc = new RTCPeerConnection({
      iceServers,
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    this.pc = pc;
    pc.ontrack = (ev) => {
      if (generation !== this.generation) return;
      const mid = ev.transceiver && ev.transceiver.mid;
      if (ev.track.kind === "audio") lowerJitterBuffer(ev.receiver);
      this.emit("track", { mid, track: ev.track });
    };
    pc.onconnectionstatechange = () => this.stateChanged(pc, generation);
    pc.addEventListener("icecandidate", (e) => {
      if (generation === this.generation && e.candidate) this.emit("candidate", { address: e.candidate.address });
    });
    pc.oniceconnectionstatechange = () => {
      if (generation !== this.generation) return;
      const state = pc.iceConnectionState;
      if (state === "disconnected" || state === "failed") this.requestRestart(`ice-${state}`);
    };
    await pc.setRemoteDescription({ type: "offer", sdp });
    const mic = pc.getTransceivers().find((x) => x.mid === "0");
    if (mic && this.sendTrack) {
      await mic.sender.replaceTrack(this.sendTrack);
      mic.direction = "sendonly";
    } else if (mic) {
      mic.direction = "inactive"; // listen-only: no microphone
    }
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    await gathered(pc, iceServers.length ? RELAY_GATHER_TIMEOUT_MS : GATHER_TIMEOUT_MS);
    if (generation !== this.generation) return;
    this.emit("answer", { sdp: pc.localDescription.sdp });
  }

  // Same DTLS, more m-lines (the browser fires "track" for the new slots only) or, after an
  // ICE restart, new ICE credentials: the browser checks the server again from where it is now.
  async renegotiate(sdp, revision) {
    const pc = this.pc;
    const generation = this.generation;
    await pc.setRemoteDescription({ type: "offer", sdp });
    const mic = pc.getTransceivers().find((x) => x.mid === "0");
    if (mic && this.sendTrack) mic.direction = "sendonly";
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (generation !== this.generation) return;
    this.emit("answer", { sdp: pc.localDescription.sdp, revision });
  }

  stateChanged(pc, generation) {
    if (generation !== this.generation) return;
    const state = pc.connectionState;
    this.emit("media", { state });
    clearTimeout(this.disconnectTimer);
    if (state === "failed") {
      this.emit("failed", {});
    } else if (state === "disconnected") {
      this.disconnectTimer = setTimeout(() => {
        if (generation === this.generation && pc.connectionState !== "connected") {
          this.emit("failed", {});
        }
      }, DISCONNECTED_GRACE_MS);
    }
  }

  async stats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    // the jitter buffer hold time each talk slot's receiver asked for (null: no hint in this
    // browser); mid "0" is our microphone, received nothing
    const requestedJitterMs = this.pc
      .getTransceivers()
      .filter((t) => t.mid !== null && t.mid !== "0" && t.receiver.track.kind === "audio")
      .map((t) => ("jitterBufferTarget" in t.receiver ? t.receiver.jitterBufferTarget : null));
    const out = { inbound: {}, outbound: null, pair: null, requestedJitterMs };
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.inbound[s.mid ?? s.trackIdentifier ?? s.id] = {
          packetsReceived: s.packetsReceived,
          bytesReceived: s.bytesReceived,
          totalAudioEnergy: s.totalAudioEnergy,
          totalSamplesDuration: s.totalSamplesDuration,
          audioLevel: s.audioLevel,
          jitterBufferDelay: s.jitterBufferDelay,
          jitterBufferEmittedCount: s.jitterBufferEmittedCount,
          jitterBufferTargetDelay: s.jitterBufferTargetDelay,
          jitterBufferMinimumDelay: s.jitterBufferMinimumDelay,
          jitter: s.jitter, // RFC 3550 interarrival jitter, s
          packetsLost: s.packetsLost,
          concealedSamples: s.concealedSamples, // played but not received (a gap, a loss)
        };
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        out.outbound = { packetsSent: s.packetsSent, bytesSent: s.bytesSent };
      } else if (s.type === "candidate-pair" && s.nominated) {
        out.pair = { state: s.state, currentRoundTripTime: s.currentRoundTripTime };
      }
    });
    return out;
  }

  // The network diagnostics the server shows administrators (signaling `stats`): the path the
  // selected candidate pair takes, its round-trip time, and loss, jitter and concealment over
  // the time since the previous report. Null while no pair is selected.
  async networkReport() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    let pair = selectedPair(report);
    if (!pair) report.forEach((s) => { if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") pair = s; });
    const local = pair ? report.get(pair.localCandidateId) : null;
    if (!local) return null;
    let path = "udp";
    if (local.candidateType === "relay") path = "turn-tls";
    else if (local.protocol === "tcp") path = "tcp";
    let received = 0, lost = 0, concealed = 0, samples = 0, jitter = 0;
    report.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") {
        received += s.packetsReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        concealed += s.concealedSamples || 0;
        samples += s.totalSamplesReceived || 0;
        jitter = Math.max(jitter, s.jitter || 0);
      }
    });
    const prev = this.lastNetwork || { received: 0, lost: 0, concealed: 0, samples: 0 };
    this.lastNetwork = { received, lost, concealed, samples };
    const dPackets = received - prev.received + (lost - prev.lost);
    const dSamples = samples - prev.samples;
    const clamp = (x) => Math.min(1, Math.max(0, x));
    const out = { path, jitter_ms: Math.min(60000, jitter * 1000) };
    if (typeof pair.currentRoundTripTime === "number") out.rtt_ms = Math.min(60000, pair.currentRoundTripTime * 1000);
    if (dPackets > 0) out.loss = clamp((lost - prev.lost) / dPackets);
    if (dSamples > 0) out.concealed_ratio = clamp((concealed - prev.concealed) / dSamples);
    return out;
  }

  close() {
    this.lastNetwork = null;
    clearTimeout(this.disconnectTimer);
    this.generation++;
    if (this.pc) {
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.oniceconnectionstatechange = null;
      this.pc.close();
      this.pc = null;
    }
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
