// Audio in and out of the page.
//
// Send path: microphone -> "vad-gate" AudioWorklet (hands-free gate or push-to-talk, see
// vad.js) -> a MediaStreamDestination whose track is what the call sends. Receive path: one
// <audio> element per talk slot; while a supervisor cuts in (`duck` from the server) every other
// slot's element volume is lowered by the duck's dB. (Not a WebAudio GainNode: Chromium feeds a
// remote WebRTC track to WebAudio only while an element plays it, and muting that element zeroes
// the slot's inbound audio statistics.) Browsers keep an AudioContext suspended and refuse to play
// until the user has touched the page: `needsGesture` says so, and `unlock()` (from a tap)
// resumes everything.
//
// Events: "gate" {open}, "level" {db, open}, "gesture" {needed}, "onset" {wall} (diagnostics).

import { playCue } from "./cues.js";

export class AudioEngine extends EventTarget {
  constructor() {
    super();
    this.ctx = null;
    this.gate = null;
    this.mic = null;
    this.sendTrack = null;
    this.elements = new Map(); // mid -> <audio>
    this.ducks = new Map(); // mid of a slot ducking the others -> its dB (negative)
    this.blocked = false;
    this.diag = null; // set by diag.js
    this.mode = "vad";
  }

  async start({ noiseSuppression = true, mode = "vad" } = {}) {
    this.mode = mode;
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      // 48 kHz like WebRTC's Opus: no resampling between the microphone, the gate and the encoder
      this.ctx = new Ctx({ latencyHint: "interactive", sampleRate: 48000 });
      this.ctx.onstatechange = () => this.gestureChanged();
      // next to this module, whichever page imports it (the phone app, the dashboard console)
      await this.ctx.audioWorklet.addModule(new URL("./gate-worklet.js", import.meta.url));
    }
    await this.openMic(noiseSuppression);
    this.gestureChanged();
    return this.sendTrack;
  }

  async openMic(noiseSuppression) {
    if (this.mic) this.mic.getTracks().forEach((t) => t.stop());
    this.mic = await navigator.mediaDevices.getUserMedia({
      audio: {
        echoCancellation: true,
        noiseSuppression,
        autoGainControl: true,
        channelCount: 1,
      },
    });
    const source = this.ctx.createMediaStreamSource(this.mic);
    if (!this.gate) {
      this.gate = new AudioWorkletNode(this.ctx, "vad-gate", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { mode: this.mode, forced: !!this.forced },
      });
      this.gate.port.onmessage = (e) => this.fromGate(e.data);
      const dest = this.ctx.createMediaStreamDestination();
      dest.channelCount = 1;
      this.gate.connect(dest);
      this.sendTrack = dest.stream.getAudioTracks()[0];
    }
    source.connect(this.gate);
  }

  fromGate(msg) {
    if (msg.type === "gate") this.emit("gate", { open: msg.open, wall: msg.wall });
    else if (msg.type === "level") this.emit("level", { db: msg.db, open: msg.open });
    else if (msg.type === "onset") this.emit("onset", { wall: msg.wall });
  }

  setMode(mode) {
    this.mode = mode;
    if (this.gate) this.gate.port.postMessage({ type: "mode", mode });
  }

  setPtt(pressed) {
    if (this.gate) this.gate.port.postMessage({ type: "ptt", pressed });
  }

  // An open emergency: the microphone is sent whatever the gate says (the server holds a slot).
  setForced(on) {
    this.forced = on;
    if (this.gate) this.gate.port.postMessage({ type: "force", on });
  }

  setDiag(on) {
    if (this.gate) this.gate.port.postMessage({ type: "diag", on });
  }

  attachRemote(mid, track) {
    let el = this.elements.get(mid);
    if (!el) {
      el = document.createElement("audio");
      el.autoplay = true;
      el.dataset.mid = mid;
      document.getElementById("remote-audio").append(el);
      this.elements.set(mid, el);
    }
    el.srcObject = new MediaStream([track]);
    this.play(el);
    this.applyDucks();
    if (this.diag) this.diag.watch(mid, track);
  }

  // A duck from the server: slot `mid` lowers every other slot by `db` (0: that duck is over).
  duck(mid, db) {
    if (db < 0) this.ducks.set(mid, db);
    else this.ducks.delete(mid);
    this.applyDucks();
  }

  applyDucks() {
    const deepest = Math.min(0, ...this.ducks.values());
    for (const [mid, el] of this.elements) {
      const db = this.ducks.has(mid) ? 0 : deepest;
      el.volume = Math.pow(10, db / 20);
    }
  }

  play(el) {
    const p = el.play();
    if (p && p.catch) {
      p.catch((err) => {
        if (err && err.name === "NotAllowedError") {
          this.blocked = true;
          this.gestureChanged();
        }
      });
    }
  }

  get needsGesture() {
    return this.blocked || (this.ctx !== null && this.ctx.state !== "running");
  }

  async unlock() {
    this.blocked = false;
    if (this.ctx && this.ctx.state !== "running") await this.ctx.resume().catch(() => {});
    for (const el of this.elements.values()) this.play(el);
    this.gestureChanged();
  }

  gestureChanged() {
    this.emit("gesture", { needed: this.needsGesture });
  }

  cue(kind) {
    const running = Boolean(this.ctx && this.ctx.state === "running");
    if (running) playCue(this.ctx, kind);
    if (this.diag) this.diag.log("cue", { cue: kind, played: running });
  }

  stopRemote() {
    for (const el of this.elements.values()) el.srcObject = null;
    this.ducks.clear();
    this.applyDucks();
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
