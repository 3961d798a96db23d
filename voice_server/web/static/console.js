// The dispatcher console (docs/signaling.md, "The dispatcher console"): one RTCPeerConnection
// hears every monitored channel; `monitor` / `unmonitor` add and drop channels, answered by a
// renegotiation offer with a `slots_map` (which mid plays which channel's slot); `talk_target`
// picks what the console talks into. Members and the last committed line of each channel come
// from its live view. Text from the server only ever goes in with textContent.
import { AudioEngine } from "/js/audio.js";
import { Call } from "/js/call.js";
import { Connection, signalingUrl } from "/js/connection.js";
import { bindPushToTalk } from "/js/ptt.js";

const root = document.getElementById("console");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const texts = root ? root.dataset : {};
const MAX = Number(texts.max || 8);

const diag = {
  events: [],
  slotsMap: {}, // mid -> {channel, channel_slot}
  analysers: {},
  ctx: null,
  conn: null,
  call: null,
  log(kind, detail = {}) {
    this.events.push({ kind, wall: Date.now(), ...detail });
  },
  // the loudest frequency on a slot m-line now (Hz), or null when it is silent
  dominantHz(mid) {
    const analyser = this.analysers[mid];
    if (!analyser || !this.ctx) return null;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (bins[best] < -70) return null;
    return (best * this.ctx.sampleRate) / analyser.fftSize;
  },
  // the element volume of each slot m-line (what volume and mute set)
  volumes() {
    const out = {};
    for (const [mid, el] of elements) out[mid] = el.muted ? 0 : el.volume;
    return out;
  },
};
window.consoleDiag = diag;

const elements = new Map(); // mid -> <audio>
const lives = new Map(); // channel -> live-view WebSocket
const members = new Map(); // channel -> [{sub, name}]
const talkers = new Map(); // channel -> Map(speaker id -> name)
let mic = null; // the phone app's microphone path: its gate worklet in push-to-talk mode
const engine = new AudioEngine();
let joinedChannel = null;
let ownSub = null; // the console's user: not a direct-talk target

function $(id) {
  return document.getElementById(id);
}

function status(text) {
  $("console-status").textContent = text;
}

function card(channel) {
  return document.querySelector(`.console-channel[data-channel="${CSS.escape(channel)}"]`);
}

function chosen() {
  return [...document.querySelectorAll(".console-channel .monitor")]
    .filter((b) => b.checked)
    .map((b) => b.value)
    .slice(0, MAX);
}

function heard() {
  return [joinedChannel, ...chosen().filter((c) => c !== joinedChannel)].filter(Boolean);
}

// ------------------------------------------------------------------ audio out
function applyVolume(mid) {
  const el = elements.get(mid);
  const entry = diag.slotsMap[mid];
  if (!el || !entry) return;
  const box = card(entry.channel);
  if (!box) return;
  // the user's volume and mute only: a channel no longer heard simply gets no packets (changing
  // an element's mute or volume glitches Chromium's remote audio, ~0.1-0.3 s in every channel)
  el.muted = box.querySelector(".mute").checked;
  el.volume = Number(box.querySelector(".volume").value) / 100;
}

function applyAll() {
  for (const mid of elements.keys()) applyVolume(mid);
}

function attach(mid, track) {
  let el = elements.get(mid);
  if (!el) {
    el = document.createElement("audio");
    el.autoplay = true;
    el.dataset.mid = mid;
    $("remote-audio").append(el);
    elements.set(mid, el);
  }
  el.srcObject = new MediaStream([track]);
  el.play().catch(() => {});
  applyVolume(mid);
  if (diag.ctx) {
    const source = diag.ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = diag.ctx.createAnalyser();
    analyser.fftSize = 4096;
    source.connect(analyser);
    diag.analysers[mid] = analyser;
  }
}

function setSlotsMap(entries) {
  const before = diag.slotsMap;
  diag.slotsMap = {};
  for (const e of entries) diag.slotsMap[e.mid] = { channel: e.channel, channel_slot: e.channel_slot };
  diag.log("slots_map", { slots: entries.length });
  // only the m-lines whose channel changed (elements of audio playing are left alone)
  for (const [mid, e] of Object.entries(diag.slotsMap)) {
    if (!before[mid] || before[mid].channel !== e.channel) applyVolume(mid);
  }
}

// ------------------------------------------------------------------ who talks, who is there
function showTalkers(channel) {
  const box = card(channel);
  if (!box) return;
  const names = [...(talkers.get(channel) || new Map()).values()];
  box.querySelector(".talking").textContent = names.length ? `${texts.talking}: ${names.join(", ")}` : "";
  box.classList.toggle("active", names.length > 0);
}

function talk(msg, started) {
  const channel = msg.channel;
  if (!channel) return;
  const map = talkers.get(channel) || new Map();
  if (started) map.set(msg.speaker.id, msg.speaker.name);
  else map.delete(msg.speaker.id);
  talkers.set(channel, map);
  showTalkers(channel);
  diag.log(started ? "talk_started" : "talk_stopped", { channel, slot: msg.slot, sub: msg.speaker.sub });
}

function showMembers(channel, list) {
  members.set(channel, list);
  const box = card(channel);
  if (box) {
    box.querySelector(".members").replaceChildren(
      ...list.map((p) => {
        const li = document.createElement("li");
        li.textContent = p.name;
        li.dataset.sub = p.sub;
        return li;
      }),
    );
  }
  const select = $("direct-user");
  const keep = select.value;
  const people = new Map();
  for (const ps of members.values()) for (const p of ps) if (p.sub !== ownSub) people.set(p.sub, p.name);
  select.replaceChildren(
    ...[...people].map(([sub, name]) => {
      const o = document.createElement("option");
      o.value = sub;
      o.textContent = `${name} (${sub})`;
      return o;
    }),
  );
  if (people.has(keep)) select.value = keep;
}

// A channel's live view (members, last line) while the console hears it: a dead server is
// noticed within 5 s (heartbeat.js) and the view opened again, 1 s later and doubling to 30 s.
function openLive(channel, delay = 1000) {
  if (lives.has(channel)) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/dashboard/live/${encodeURIComponent(channel)}/ws`;
  let live = false;
  const ws = window.dashboardSocket(url, {
    open: (sock) => sock.send(JSON.stringify({ type: "hello", csrf })),
    message: (event) => {
      const msg = JSON.parse(event.data);
      if (msg.type === "presence") {
        showMembers(channel, msg.participants);
        delay = 1000;
        if (!live) diag.log("live", { channel });
        live = true;
      } else if (msg.type === "utterance") {
        const line = card(channel).querySelector(".last-line");
        line.querySelector(".speaker-name").textContent = msg.speaker_name;
        line.querySelector(".text").textContent = msg.text;
      }
    },
    gone: (code) => {
      if (lives.get(channel) !== ws) return; // closed on purpose (no longer heard)
      lives.delete(channel);
      diag.log("live_lost", { channel, code });
      if ([4401, 4403, 4404].includes(code)) return;
      setTimeout(() => {
        if (heard().includes(channel)) openLive(channel, Math.min(delay * 2, 30000));
      }, delay);
    },
  });
  lives.set(channel, ws);
}

function closeLive(channel) {
  const ws = lives.get(channel);
  lives.delete(channel);
  if (ws) ws.close();
}

// ------------------------------------------------------------------ signaling
function targetMessage() {
  const picked = document.querySelector('input[name="target"]:checked');
  const value = picked ? picked.value : joinedChannel;
  if (value === "*all") return { type: "talk_target", channels: heard() };
  if (value === "*user") return { type: "talk_target", user: $("direct-user").value || "" };
  return { type: "talk_target", channels: [value] };
}

function sendTarget() {
  if (diag.conn && diag.conn.state === "joined") diag.conn.send({ ...targetMessage(), id: "target" });
}

function onMessage(msg) {
  switch (msg.type) {
    case "offer":
      if (Array.isArray(msg.slots_map)) setSlotsMap(msg.slots_map);
      diag.call.handleOffer(msg.sdp, msg.renegotiate === true, msg.revision ?? null).catch((err) => diag.log("error", { message: String(err) }));
      if (msg.renegotiate) diag.log("renegotiate", { revision: msg.revision });
      break;
    case "monitored":
      setSlotsMap(msg.slots_map);
      diag.log("monitored", { channels: msg.channels });
      break;
    case "talk_target_set":
      $("talk-state").textContent = msg.user ? `→ ${msg.user}` : `→ ${msg.channels.join(", ")}`;
      diag.log("talk_target_set", { channels: msg.channels, user: msg.user, target_kind: msg.kind });
      break;
    case "talk_started":
    case "talk_stopped":
      talk(msg, msg.type === "talk_started");
      break;
    case "slot_busy":
      engine.cue("busy");
      break;
    case "error":
      diag.log("error", { code: msg.code, message: msg.message });
      status(`${msg.code}: ${msg.message}`);
      break;
    default:
      break;
  }
}

async function joinToken(channels) {
  const r = await fetch("/api/v1/auth/join-token", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ channels }),
    credentials: "same-origin",
  });
  if (!r.ok) throw new Error(`join-token ${r.status}`);
  return r.json();
}

function deviceId() {
  let id = localStorage.getItem("console-device");
  if (!id) {
    id = `console-${Math.random().toString(36).slice(2, 10)}`;
    localStorage.setItem("console-device", id);
  }
  return id;
}

async function start() {
  $("console-start").disabled = true;
  status(texts.connecting);
  const channels = chosen();
  let token;
  try {
    token = await joinToken(channels);
  } catch (err) {
    status(texts.refused);
    $("console-start").disabled = false;
    return;
  }
  joinedChannel = token.channel;
  try {
    mic = await engine.start({ noiseSuppression: $("ns").checked, mode: "ptt" });
  } catch (err) {
    status(texts.mic);
  }
  diag.ctx = engine.ctx || new AudioContext();
  const call = (diag.call = new Call());
  if (mic) call.setSendTrack(mic);
  call.addEventListener("answer", (e) => diag.conn.send({ type: "answer", sdp: e.detail.sdp, revision: e.detail.revision ?? undefined }));
  call.addEventListener("track", (e) => attach(e.detail.mid, e.detail.track));
  call.addEventListener("media", (e) => {
    diag.log("media", { state: e.detail.state });
    if (e.detail.state === "connected") status(texts.connected);
  });
  call.addEventListener("failed", () => diag.conn && diag.conn.rejoin());
  const conn = (diag.conn = new Connection({ url: signalingUrl(), deviceId: deviceId(), token: token.token }));
  conn.addEventListener("joined", (e) => {
    diag.log("joined", { resumed: e.detail.message.resumed });
    call.setIceServers(e.detail.message.ice_servers); // the server's TURN relay, if any
    ownSub = (e.detail.message.you || {}).sub || null;
    if (!e.detail.message.resumed) {
      const others = heard().filter((c) => c !== joinedChannel);
      if (others.length) conn.send({ type: "monitor", channels: others, id: "monitor" });
      sendTarget();
    }
    $("talk").disabled = !mic;
  });
  conn.addEventListener("lost", (e) => diag.log("lost", { why: e.detail.why }));
  conn.addEventListener("message", (e) => onMessage(e.detail.message));
  conn.addEventListener("stopped", (e) => {
    status(`${texts.closed} (${e.detail.code || e.detail.reason})`);
    $("talk").disabled = true;
  });
  conn.start(joinedChannel);
  for (const c of heard()) openLive(c);
  bindPushToTalk({
    button: $("talk"),
    isActive: () => Boolean(mic) && conn.state === "joined",
    onPress: (pressed) => {
      if (!mic) return;
      engine.setPtt(pressed);
      $("talk").classList.toggle("pressed", pressed);
      diag.log("ptt", { pressed });
    },
  });
}

function monitorChanged(box) {
  const checked = document.querySelectorAll(".console-channel .monitor:checked").length;
  if (box.checked && checked > MAX) {
    box.checked = false;
    status(texts.tooMany);
    return;
  }
  if (!diag.conn || diag.conn.state !== "joined" || box.value === joinedChannel) {
    if (box.value === joinedChannel) box.checked = true;
    return;
  }
  diag.conn.send({ type: box.checked ? "monitor" : "unmonitor", channels: [box.value], id: box.checked ? "monitor" : "unmonitor" });
  if (box.checked) openLive(box.value);
  else closeLive(box.value);
  const picked = document.querySelector('input[name="target"]:checked');
  if (picked && picked.value === "*all") sendTarget(); // the all-call follows what is heard
}

if (root) {
  // after a click on a control, the space bar is push-to-talk again (not a checkbox toggle)
  root.addEventListener("change", (e) => {
    const el = e.target;
    if (el instanceof HTMLInputElement && ["checkbox", "radio", "range"].includes(el.type)) el.blur();
  });
  $("console-start").addEventListener("click", () => start());
  for (const box of document.querySelectorAll(".console-channel .monitor")) {
    box.addEventListener("change", () => monitorChanged(box));
  }
  for (const input of document.querySelectorAll(".console-channel .volume, .console-channel .mute")) {
    input.addEventListener("input", applyAll);
    input.addEventListener("change", applyAll);
  }
  for (const radio of document.querySelectorAll('input[name="target"]')) {
    radio.addEventListener("change", sendTarget);
  }
  $("direct-user").addEventListener("change", () => {
    const picked = document.querySelector('input[name="target"]:checked');
    if (picked && picked.value === "*user") sendTarget();
  });
}
