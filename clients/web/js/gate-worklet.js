// AudioWorklet processors (run on the audio thread, so a background tab's timer throttling
// cannot delay or cut speech):
// - "vad-gate": the microphone path. Measures 10 ms blocks, runs the VadGate and outputs the
//   microphone delayed by one block, multiplied by a ramped gain (1 open, 0 closed). Closed means
//   digital silence: the browser's encoder marks it level 127 (and DTX sends almost nothing), so
//   the server's talk detector sees silence.
// - "onset-probe": diagnostics on a received track (benchmark and tests): reports tone onsets.
// Both report onsets with the wall clock (Date.now) when asked to ({type: "diag", on: true}).
import { rmsDb, VadGate } from "./vad.js";

const LOUD = 0.05; // an onset is a sample above this (-26 dBFS) ...
const QUIET_MS = 300; // ... after this long without one

class OnsetDetector {
  constructor(rate) {
    this.quietNeeded = Math.round((rate * QUIET_MS) / 1000);
    this.sinceLoud = this.quietNeeded;
  }

  // returns the index of the first onset in samples, or -1
  scan(samples) {
    let found = -1;
    for (let i = 0; i < samples.length; i++) {
      if (Math.abs(samples[i]) > LOUD) {
        if (this.sinceLoud >= this.quietNeeded && found < 0) found = i;
        this.sinceLoud = 0;
      } else {
        this.sinceLoud++;
      }
    }
    return found;
  }
}

class VadGateProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = (options && options.processorOptions) || {};
    this.block = Math.round(sampleRate / 100);
    this.gate = new VadGate(o.vad || {});
    if (o.mode) this.gate.setMode(o.mode);
    this.forced = !!o.forced;
    this.delay = new Float32Array(this.block * 2);
    this.w = 0;
    this.filled = 0;
    this.acc = new Float32Array(this.block);
    this.accN = 0;
    this.gain = 0;
    this.step = 1 / Math.round(sampleRate * 0.005); // 5 ms ramps
    this.diag = null;
    this.levelEvery = 10; // blocks between level reports (100 ms)
    this.levelCount = 0;
    this.peakDb = -100;
    this.port.onmessage = (e) => this.command(e.data);
  }

  command(msg) {
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "mode") this.gate.setMode(msg.mode);
    else if (msg.type === "ptt") this.gate.setPtt(!!msg.pressed);
    else if (msg.type === "vad") this.gate.configure(msg.options || {});
    else if (msg.type === "force") this.forced = !!msg.on; // an open emergency: always send
    else if (msg.type === "diag") this.diag = msg.on ? new OnsetDetector(sampleRate) : null;
  }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    const out = outputs[0][0];
    const n = out.length;
    const size = this.delay.length;
    for (let i = 0; i < n; i++) {
      const x = input ? input[i] : 0;
      // one block of look-behind: the output is the input of one block ago
      const delayed = this.filled >= this.block ? this.delay[(this.w - this.block + size) % size] : 0;
      this.delay[this.w] = x;
      this.w = (this.w + 1) % size;
      if (this.filled < this.block) this.filled++;
      this.acc[this.accN++] = x;
      if (this.accN === this.block) this.endBlock();
      const target = this.gate.open || this.forced ? 1 : 0;
      if (this.gain < target) this.gain = Math.min(target, this.gain + this.step);
      else if (this.gain > target) this.gain = Math.max(target, this.gain - this.step);
      out[i] = delayed * this.gain;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    if (this.diag) {
      const at = this.diag.scan(out);
      if (at >= 0) this.port.postMessage({ type: "onset", wall: Date.now(), frame: currentFrame + at });
    }
    return true;
  }

  endBlock() {
    this.accN = 0;
    const db = rmsDb(this.acc);
    if (db > this.peakDb) this.peakDb = db;
    if (this.gate.feed(db)) {
      this.port.postMessage({ type: "gate", open: this.gate.open, wall: Date.now() });
    }
    if (++this.levelCount >= this.levelEvery) {
      this.port.postMessage({ type: "level", db: this.peakDb, open: this.gate.open });
      this.levelCount = 0;
      this.peakDb = -100;
    }
  }
}

class OnsetProbeProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.detector = new OnsetDetector(sampleRate);
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (input) {
      const at = this.detector.scan(input);
      if (at >= 0) this.port.postMessage({ type: "onset", wall: Date.now(), frame: currentFrame + at });
    }
    return true;
  }
}

// Diagnostics only (`voice-server bench network`'s speech score): what a received slot played,
// posted in blocks of about 85 ms while recording (a message {record: true|false} switches it).
class PcmTapProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.recording = false;
    this.block = new Float32Array(4096);
    this.n = 0;
    this.port.onmessage = (e) => {
      this.recording = !!e.data.record;
      if (!this.recording && this.n > 0) this.flush();
    };
  }

  flush() {
    this.port.postMessage({ type: "pcm", samples: this.block.slice(0, this.n) });
    this.n = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!this.recording || !input) return true;
    for (let i = 0; i < input.length; i++) {
      this.block[this.n++] = input[i];
      if (this.n === this.block.length) this.flush();
    }
    return true;
  }
}

registerProcessor("vad-gate", VadGateProcessor);
registerProcessor("pcm-tap", PcmTapProcessor);
registerProcessor("onset-probe", OnsetProbeProcessor);
