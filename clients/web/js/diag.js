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
