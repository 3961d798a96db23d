// Diagnostics for the end-to-end tests and `voice-server bench latency`, enabled only by the
// device link's diag=1: onsets of the sent audio (as it leaves the gate) and of each received
// slot (as it reaches WebAudio), with the wall clock, plus an analyser per received slot.
export class Diagnostics {
  constructor(engine, call, conn) {
    this.engine = engine;
    this.call = call;
    this.conn = conn;
    this.txOnsets = [];
    this.rxOnsets = {};
    this.analysers = {};
    this.taps = {};
    this.recorded = {};
    this.events = [];
    engine.diag = this;
    engine.addEventListener("onset", (e) => this.txOnsets.push(e.detail.wall));
  }

  log(kind, detail = {}) {
    this.events.push({ kind, wall: Date.now(), ...detail });
  }

  enableTx() {
    this.engine.setDiag(true);
  }

  watch(mid, track) {
    const ctx = this.engine.ctx;
    if (!ctx) return;
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 4096;
    const probe = new AudioWorkletNode(ctx, "onset-probe", { numberOfOutputs: 0 });
    const list = (this.rxOnsets[mid] = this.rxOnsets[mid] || []);
    probe.port.onmessage = (e) => {
      if (e.data.type === "onset") list.push(e.data.wall);
    };
    source.connect(analyser);
    source.connect(probe);
    this.analysers[mid] = analyser;
    const tap = new AudioWorkletNode(ctx, "pcm-tap", { numberOfOutputs: 0 });
    tap.port.onmessage = (e) => {
      if (e.data.type === "pcm") (this.recorded[mid] = this.recorded[mid] || []).push(e.data.samples);
    };
    source.connect(tap);
    this.taps[mid] = tap;
  }

  // Record what every received slot plays (bench network's speech score), from now on.
  startRecording() {
    this.recorded = {};
    for (const tap of Object.values(this.taps)) tap.port.postMessage({ record: true });
  }

  // How many seconds the longest recorded slot holds so far.
  recordedSeconds() {
    const lengths = Object.values(this.recorded).map((bs) => bs.reduce((a, b) => a + b.length, 0));
    return Math.max(0, ...lengths) / this.engine.ctx.sampleRate;
  }

  // Stop recording; the received slots mixed, as 16-bit PCM in base64, with the sample rate.
  async stopRecording() {
    for (const tap of Object.values(this.taps)) tap.port.postMessage({ record: false });
    await new Promise((resolve) => setTimeout(resolve, 300)); // the last blocks' messages
    const tracks = Object.values(this.recorded).map((blocks) => {
      const n = blocks.reduce((a, b) => a + b.length, 0);
      const all = new Float32Array(n);
      let at = 0;
      for (const b of blocks) {
        all.set(b, at);
        at += b.length;
      }
      return all;
    });
    const n = Math.max(0, ...tracks.map((t) => t.length));
    const pcm = new Int16Array(n);
    for (let i = 0; i < n; i++) {
      let x = 0;
      for (const t of tracks) x += i < t.length ? t[i] : 0;
      pcm[i] = Math.max(-32768, Math.min(32767, Math.round(x * 32767)));
    }
    let text = "";
    const bytes = new Uint8Array(pcm.buffer);
    for (let i = 0; i < bytes.length; i += 0x8000) {
      text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return { rate: this.engine.ctx.sampleRate, pcm: btoa(text) };
  }

  // The loudest frequency heard on a slot now (Hz), or null when it is silent.
  dominantHz(mid) {
    const analyser = this.analysers[mid];
    if (!analyser) return null;
    const bins = new Float32Array(analyser.frequencyBinCount);
    analyser.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (bins[best] < -70) return null;
    return (best * this.engine.ctx.sampleRate) / analyser.fftSize;
  }

  async stats() {
    return this.call.stats();
  }
}
