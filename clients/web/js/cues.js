// Audible cues, synthesised with WebAudio (no files): short, distinct, not alarming.
const CUES = {
  joined: [[660, 0.08], [880, 0.12]],
  left: [[880, 0.08], [660, 0.12]],
  disconnected: [[440, 0.12], [330, 0.12], [220, 0.2]],
  reconnected: [[440, 0.08], [660, 0.08], [880, 0.12]],
  busy: [[300, 0.1], [0, 0.06], [300, 0.1]],
  warning: [[880, 0.1], [0, 0.08], [880, 0.1], [0, 0.08], [880, 0.1]],
  // before a spoken announcement (the chime of a public-address system; the clip is speech only)
  announcement: [[523, 0.12], [659, 0.12], [784, 0.2]],
  // before a direct talk from a console (to this person alone): two quick high notes
  direct: [[988, 0.07], [0, 0.05], [988, 0.07]],
};

export function playCue(ctx, kind) {
  const notes = CUES[kind];
  if (!notes) return;
  let at = ctx.currentTime + 0.01;
  for (const [freq, dur] of notes) {
    if (freq > 0) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0, at);
      gain.gain.linearRampToValueAtTime(0.18, at + 0.01);
      gain.gain.setValueAtTime(0.18, at + dur - 0.02);
      gain.gain.linearRampToValueAtTime(0, at + dur);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + dur + 0.01);
    }
    at += dur;
  }
}
