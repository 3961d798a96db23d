// The emergency control of the phone app. Hold the red button 2 s; a 5 s countdown follows that
// one tap anywhere on it cancels (nothing is sent); then `emergency {"action": "raise"}` goes to
// the server with this device's location when the user opted in (per device, remembered here).
// While the server holds our emergency open (`emergency_update` raised, `window_s`), the
// microphone is sent whatever the gate says, so a quiet voice is heard; the raiser can cancel
// their own open emergency. Text is set with textContent only.

export const HOLD_MS = 2000;
export const COUNTDOWN_S = 5;
const LOCATION_KEY = "voice.emergency_location";

function remembered() {
  try {
    return localStorage.getItem(LOCATION_KEY) === "1";
  } catch {
    return false;
  }
}

function remember(on) {
  try {
    if (on) localStorage.setItem(LOCATION_KEY, "1");
    else localStorage.removeItem(LOCATION_KEY);
  } catch {
    /* private mode: asked again next time */
  }
}

function position(timeoutMs) {
  return new Promise((resolve) => {
    if (!("geolocation" in navigator)) {
      resolve(null);
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (p) =>
        resolve({
          lat: p.coords.latitude,
          lon: p.coords.longitude,
          accuracy: Number.isFinite(p.coords.accuracy) ? p.coords.accuracy : undefined,
        }),
      () => resolve(null),
      { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: 30000 },
    );
  });
}

export class EmergencyControl {
  // els: {button, countdown, count, state, cancelOwn, location}; send(message); force(on); t(key, vars);
  // me() -> our sub (or null); isActive() -> in a call
  constructor({ els, send, force, t, me, isActive, cue }) {
    this.els = els;
    this.send = send;
    this.force = force;
    this.t = t;
    this.me = me;
    this.isActive = isActive;
    this.cue = cue || (() => {});
    this.holdTimer = null;
    this.tickTimer = null;
    this.left = 0;
    this.windowTimer = null;
    this.openId = null;
    this.located = null;
    els.location.checked = remembered();
    this.bind();
  }

  bind() {
    const { button, countdown, cancelOwn, location } = this.els;
    button.addEventListener("pointerdown", (e) => {
      if (!this.isActive() || this.tickTimer) return;
      button.setPointerCapture(e.pointerId);
      button.dataset.holding = "true";
      this.holdTimer = setTimeout(() => this.startCountdown(), HOLD_MS);
      e.preventDefault();
    });
    const release = () => {
      button.dataset.holding = "false";
      clearTimeout(this.holdTimer);
      this.holdTimer = null;
    };
    button.addEventListener("pointerup", release);
    button.addEventListener("pointercancel", release);
    button.addEventListener("contextmenu", (e) => e.preventDefault());
    countdown.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      this.cancelCountdown();
    });
    cancelOwn.addEventListener("click", () => this.send({ type: "emergency", action: "cancel" }));
    location.addEventListener("change", async () => {
      remember(location.checked);
      if (location.checked) await position(10000); // asks for the permission now, on a gesture
    });
  }

  startCountdown() {
    this.holdTimer = null;
    this.els.button.dataset.holding = "false";
    this.left = COUNTDOWN_S;
    this.located = this.els.location.checked ? position(4000) : Promise.resolve(null);
    this.els.countdown.hidden = false;
    this.els.countdown.dataset.state = "counting";
    this.showCount();
    this.cue("warning");
    this.tickTimer = setInterval(() => {
      this.left -= 1;
      if (this.left <= 0) this.fire();
      else this.showCount();
    }, 1000);
  }

  showCount() {
    this.els.count.textContent = this.t("emergency_countdown", { seconds: this.left });
  }

  cancelCountdown() {
    if (!this.tickTimer) return;
    clearInterval(this.tickTimer);
    this.tickTimer = null;
    this.els.countdown.hidden = true;
    this.els.countdown.dataset.state = "cancelled";
    this.showState(this.t("emergency_cancelled"), "cancelled");
  }

  async fire() {
    clearInterval(this.tickTimer);
    this.tickTimer = null;
    this.els.countdown.hidden = true;
    this.els.countdown.dataset.state = "sent";
    const location = await this.located;
    const message = { type: "emergency", action: "raise" };
    if (location) message.location = location;
    this.send(message);
    this.showState(this.t("emergency_sending"), "sending");
  }

  showState(text, state) {
    const el = this.els.state;
    el.textContent = text;
    el.dataset.state = state;
    el.hidden = !text;
  }

  // `emergency_update` from the server (ours or another member's in this channel)
  update(msg) {
    const mine = msg.subject && msg.subject === this.me();
    if (!mine) {
      if (msg.state === "raised") this.cue("warning");
      return;
    }
    if (msg.state === "raised") {
      this.openId = msg.id;
      this.els.cancelOwn.hidden = false;
      this.showState(this.t("emergency_open"), "raised");
      this.hold(msg.window_s || 0);
    } else if (msg.state === "acknowledged") {
      this.showState(this.t("emergency_acknowledged", { name: msg.by }), "acknowledged");
    } else if (msg.state === "resolved") {
      this.openId = null;
      this.els.cancelOwn.hidden = true;
      this.hold(0);
      this.showState(this.t("emergency_resolved"), "resolved");
    }
  }

  // an `error` the server answered our emergency message with
  refused(code) {
    if (code === "emergency_open") this.showState(this.t("emergency_still_open"), "raised");
    else if (code === "emergency_none") this.showState("", "idle");
  }

  hold(seconds) {
    clearTimeout(this.windowTimer);
    this.windowTimer = null;
    this.force(seconds > 0);
    document.body.dataset.emergencyWindow = seconds > 0 ? "open" : "closed";
    if (seconds > 0) this.windowTimer = setTimeout(() => this.hold(0), seconds * 1000);
  }

  reset() {
    clearTimeout(this.holdTimer);
    clearInterval(this.tickTimer);
    this.tickTimer = null;
    this.els.countdown.hidden = true;
    this.hold(0);
  }
}
