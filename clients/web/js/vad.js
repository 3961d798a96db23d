// Voice-activity gate, pure (no DOM, no WebAudio): the same rule as the headset client's
// voice_client/vad.py. Fed one 10 ms block at a time (its RMS level in dBFS).
//
// - A block is voiced when louder than max(thresholdDb, noise floor + snrDb). The noise floor
//   follows quieter blocks down at once and creeps up 3 dB/s, so steady site noise stops counting.
// - Attack: the gate opens *tentatively* on the first voiced block (the caller delays its audio by
//   one block, so the first syllable is whole) and a burst is *confirmed* once voiced blocks span
//   attackMs. A tentative burst whose voiced run breaks (two quiet blocks) closes at once: a click
//   or a bump sends a few tens of milliseconds, never a hangover's worth.
// - Hangover: a confirmed burst closes hangoverMs after its last voiced block, so the ends of
//   words and short pauses are not cut.
// - Push-to-talk overrides: open while pressed, closed pttTailMs after release.

export const BLOCK_MS = 10;

export const DEFAULTS = Object.freeze({
  thresholdDb: -45,
  snrDb: 10,
  attackMs: 30,
  hangoverMs: 500,
  pttTailMs: 120,
});

export function rmsDb(samples, start = 0, end = samples.length) {
  let sum = 0;
  for (let i = start; i < end; i++) sum += samples[i] * samples[i];
  const n = Math.max(1, end - start);
  const rms = Math.sqrt(sum / n);
  return rms > 1e-5 ? 20 * Math.log10(rms) : -100;
}

export class VadGate {
  constructor(options = {}) {
    this.configure(options);
    this.floorDb = -70;
    this.open = false;
    this.confirmed = false;
    this.ptt = false;
    this.mode = "vad"; // or "ptt"
    this.t = 0; // ms of audio seen
    this.runStart = -1;
    this.lastVoiced = -1;
    this.quietInRun = 0;
    this.releasedAt = -1;
  }

  configure(options) {
    this.opts = { ...DEFAULTS, ...(this.opts || {}), ...options };
  }

  setMode(mode) {
    this.mode = mode === "ptt" ? "ptt" : "vad";
    this._close();
  }

  setPtt(pressed) {
    if (pressed && !this.ptt) this.releasedAt = -1;
    if (!pressed && this.ptt) this.releasedAt = this.t;
    this.ptt = pressed;
  }

  // One block; returns true when the gate state changed.
  feed(levelDb) {
    const o = this.opts;
    this.t += BLOCK_MS;
    const before = this.open;
    const voiced = levelDb > Math.max(o.thresholdDb, this.floorDb + o.snrDb);
    // the floor drops to any quieter block at once and creeps up 3 dB/s otherwise (steady noise
    // stops counting as voice after a while; pauses between words pull it back down)
    this.floorDb = levelDb < this.floorDb ? levelDb : Math.min(this.floorDb + 0.03, levelDb);

    if (this.mode === "ptt") {
      if (this.ptt) {
        this.open = true;
        this.confirmed = true;
      } else if (this.open && this.t - this.releasedAt >= o.pttTailMs) {
        this._close();
      }
      return this.open !== before;
    }

    if (voiced) {
      if (this.runStart < 0) this.runStart = this.t;
      this.lastVoiced = this.t;
      this.quietInRun = 0;
      this.open = true;
      if (!this.confirmed && this.t - this.runStart + BLOCK_MS >= o.attackMs) this.confirmed = true;
    } else if (this.open) {
      if (this.confirmed) {
        if (this.t - this.lastVoiced >= o.hangoverMs) this._close();
      } else if (++this.quietInRun >= 2) {
        this._close();
      }
    }
    return this.open !== before;
  }

  _close() {
    this.open = false;
    this.confirmed = false;
    this.runStart = -1;
    this.quietInRun = 0;
  }
}
