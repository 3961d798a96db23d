// The phone client: wires the sign-in form, the connection, the call, the audio engine and the
// screen together. No framework, no build step, no inline script (the server sets a strict CSP).
import { AudioEngine } from "./audio.js";
import { Call } from "./call.js";
import { Connection, signalingUrl } from "./connection.js";
import { Diagnostics } from "./diag.js";
import { applyTranslations, pickLanguage, setLanguage, t } from "./i18n.js";
import { readDeviceLink, tokenClaims, validChannel } from "./link.js";
import { People } from "./people.js";
import { bindPushToTalk } from "./ptt.js";
import { ScreenLock } from "./wakelock.js";

const $ = (id) => document.getElementById(id);

const store = {
  get(key) {
    try {
      return localStorage.getItem(`voice.${key}`);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      if (value === null) localStorage.removeItem(`voice.${key}`);
      else localStorage.setItem(`voice.${key}`, value);
    } catch {
      /* private mode: nothing is remembered */
    }
  },
};

// Where a fresh token comes from when the server says the current one expires. A pasted token
// has no source to renew from (the user is warned); server-issued tokens (sign-in codes, a later
// issue) plug in here: refresh() resolves to the new token or null.
const pastedTokens = { refresh: async () => null };

function deviceId() {
  let id = store.get("device_id");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    id = `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    store.set("device_id", id);
  }
  return id;
}

class App {
  constructor() {
    this.engine = new AudioEngine();
    this.call = new Call();
    this.lock = new ScreenLock();
    this.people = new People($("people"), $("nobody"));
    this.conn = null;
    this.mode = store.get("mode") === "ptt" ? "ptt" : "vad";
    this.tokens = pastedTokens;
    this.inCall = false;
    this.diag = null;
    this.bind();
  }

  bind() {
    $("join").addEventListener("click", () => this.join());
    $("leave").addEventListener("click", () => this.leave());
    $("tap").addEventListener("click", () => this.engine.unlock());
    $("switch").addEventListener("click", () => this.switchChannel());
    $("renew").addEventListener("click", () => this.renewToken($("new-token").value.trim()));
    $("mode-vad").addEventListener("click", () => this.setMode("vad"));
    $("mode-ptt").addEventListener("click", () => this.setMode("ptt"));
    $("ns").addEventListener("change", () => this.engine.openMic($("ns").checked).catch(() => {}));
    $("token").addEventListener("input", () => this.fillChannels($("token").value.trim()));
    document.addEventListener("pointerdown", () => {
      if (this.engine.needsGesture) this.engine.unlock();
    });
    window.addEventListener("pagehide", () => {
      if (this.conn) this.conn.stop("left");
    });
    this.ptt = bindPushToTalk({
      button: $("ptt"),
      onPress: (pressed) => {
        this.engine.setPtt(pressed);
        $("ptt").classList.toggle("pressed", pressed);
      },
      isActive: () => this.inCall && this.mode === "ptt",
    });

    this.engine.addEventListener("gesture", (e) => {
      $("tap").hidden = !(e.detail.needed && this.inCall);
    });
    this.engine.addEventListener("gate", (e) => {
      $("me").dataset.sending = e.detail.open ? "true" : "false";
      $("me-state").textContent = t(e.detail.open ? "sending" : "listening");
      if (!e.detail.open) $("busy").hidden = true;
    });
    this.engine.addEventListener("level", (e) => {
      const pct = Math.max(0, Math.min(100, ((e.detail.db + 70) / 60) * 100));
      $("meter-fill").style.width = `${pct.toFixed(0)}%`;
    });

    this.call.addEventListener("answer", (e) => {
      if (!this.conn) return;
      const answer = { type: "answer", sdp: e.detail.sdp };
      if (Number.isInteger(e.detail.revision)) {
        answer.revision = e.detail.revision;
        if (this.diag) this.diag.log("renegotiated", { revision: e.detail.revision });
      }
      this.conn.send(answer);
    });
    this.call.addEventListener("track", (e) => this.engine.attachRemote(e.detail.mid, e.detail.track));
    this.call.addEventListener("media", (e) => {
      if (this.diag) this.diag.log("media", { state: e.detail.state });
      this.showStatus();
    });
    this.call.addEventListener("failed", () => {
      if (this.conn) this.conn.rejoin();
    });
  }

  // ---------------------------------------------------------------- start
  init() {
    setLanguage(pickLanguage(navigator.languages || [navigator.language]));
    applyTranslations();
    this.setMode(this.mode);
    const link = this.takeLink();
    // a device link opened in a tab that already shows the app changes only the fragment
    window.addEventListener("hashchange", () => this.linkOpenedAgain());
    const token = store.get("token") || "";
    $("token").value = token;
    $("channel").value = store.get("channel") || "";
    this.fillChannels(token);
    if (link && link.diag) {
      this.diag = new Diagnostics(this.engine, this.call, null);
      window.voiceDiag = this.diag;
    }
    if ("serviceWorker" in navigator && window.isSecureContext) {
      navigator.serviceWorker.register("sw.js", { updateViaCache: "none" }).catch(() => {});
    }
    if (link && link.autojoin && token && $("channel").value) this.join();
  }

  takeLink() {
    const link = readDeviceLink();
    if (link) {
      if (link.token) store.set("token", link.token);
      if (link.channel) store.set("channel", link.channel);
      if (link.mode === "ptt" || link.mode === "vad") this.setMode(link.mode);
    }
    return link;
  }

  linkOpenedAgain() {
    const link = this.takeLink();
    if (!link) return;
    const token = store.get("token") || "";
    const channel = store.get("channel") || "";
    $("token").value = token;
    $("channel").value = channel;
    this.fillChannels(token);
    if (this.conn) {
      if (link.token && link.token !== this.conn.token) this.renewToken(link.token);
      if (channel && channel !== this.conn.channel) this.conn.switchChannel(channel);
    } else if (link.autojoin && token && channel) {
      this.join();
    }
  }

  fillChannels(token) {
    const claims = tokenClaims(token);
    const list = $("channel-options");
    const names = claims && Array.isArray(claims.channels) ? claims.channels.filter((c) => c !== "*") : [];
    list.replaceChildren(
      ...names.map((name) => {
        const opt = document.createElement("option");
        opt.value = name;
        return opt;
      }),
    );
    if (!$("channel").value && names.length === 1) $("channel").value = names[0];
  }

  // ---------------------------------------------------------------- join / leave
  async join() {
    const token = $("token").value.trim();
    const channel = $("channel").value.trim();
    if (!token) return this.signinError(t("no_token"));
    if (!validChannel(channel)) return this.signinError(t("error_channel", { message: channel }));
    store.set("token", token);
    store.set("channel", channel);
    $("signin-error").hidden = true;
    this.show(true);
    let sendTrack = null;
    try {
      sendTrack = await this.engine.start({ noiseSuppression: $("ns").checked, mode: this.mode });
    } catch (err) {
      this.warn(t("error_mic", { message: err && err.message ? err.message : String(err) }));
    }
    if (this.diag) this.diag.enableTx();
    this.call.setSendTrack(sendTrack);
    const conn = new Connection({ url: signalingUrl(), deviceId: deviceId(), token });
    this.conn = conn;
    if (this.diag) this.diag.conn = conn;
    conn.addEventListener("state", () => this.showStatus());
    conn.addEventListener("joined", (e) => this.joined(e.detail.message, e.detail.reconnected));
    conn.addEventListener("lost", () => this.lost());
    conn.addEventListener("message", (e) => this.message(e.detail.message));
    conn.addEventListener("stopped", (e) => this.stopped(e.detail));
    conn.start(channel);
  }

  leave() {
    if (this.conn) this.conn.stop("left");
  }

  switchChannel() {
    const channel = $("switch-channel").value.trim();
    if (!this.conn || !validChannel(channel)) return;
    store.set("channel", channel);
    this.conn.switchChannel(channel);
  }

  joined(msg, reconnected) {
    const name = msg.channel ? msg.channel.display_name || msg.channel.name : "";
    $("channel-name").textContent = name;
    $("switch-channel").value = "";
    this.people.reset(msg.you, msg.participants || []);
    this.engine.cue(reconnected ? "reconnected" : "joined");
    this.lock.acquire();
    if ("mediaSession" in navigator && window.MediaMetadata) {
      navigator.mediaSession.metadata = new MediaMetadata({ title: name, artist: t("title") });
    }
    if (this.diag) this.diag.log(reconnected ? "reconnected" : "joined", { resumed: msg.resumed });
    this.showStatus();
    // Resumed with the server keeping our transport, so no new offer comes: if our side of the
    // media died meanwhile (network change), ask for a fresh session and offer.
    const media = this.call.pc ? this.call.pc.connectionState : "none";
    if (msg.resumed && ["failed", "closed", "none"].includes(media)) {
      setTimeout(() => {
        const now = this.call.pc ? this.call.pc.connectionState : "none";
        if (this.conn && ["failed", "closed", "none"].includes(now)) this.conn.rejoin();
      }, 1500);
    }
  }

  lost() {
    this.engine.cue("disconnected");
    if (this.diag) this.diag.log("lost");
    $("busy").hidden = true;
  }

  message(msg) {
    switch (msg.type) {
      case "offer":
        this.call.handleOffer(msg.sdp, msg.renegotiate === true, msg.revision).catch((err) => {
          this.warn(t("error_generic", { message: err.message || String(err) }));
        });
        break;
      case "participant_joined":
        this.people.upsert(msg.participant);
        break;
      case "participant_left":
        this.people.remove(msg.participant);
        break;
      case "talk_started":
      case "talk_stopped": {
        const started = msg.type === "talk_started";
        this.people.talk(msg.speaker, started, msg.slot);
        if (started && this.people.you && msg.speaker.id === this.people.you.id) $("busy").hidden = true;
        break;
      }
      case "slot_busy":
        $("busy").hidden = false;
        this.engine.cue("busy");
        break;
      case "token_expiring":
        this.tokenExpiring(msg.expires_at);
        break;
      case "refreshed":
        this.warn(t("token_refreshed"), 4000);
        break;
      case "left":
        // switching channel: the old channel's call is over, the join follows
        this.call.close();
        this.engine.stopRemote();
        this.people.clear();
        break;
      case "error":
        this.warn(t("error_generic", { message: msg.message || msg.code }), 6000);
        break;
      default:
        break;
    }
  }

  async tokenExpiring(expiresAt) {
    const fresh = await this.tokens.refresh().catch(() => null);
    if (fresh) {
      this.renewToken(fresh);
      return;
    }
    const time = new Date(expiresAt * 1000).toLocaleTimeString();
    this.warn(t("token_expiring", { time }));
    $("call").querySelector("details.settings").open = true;
  }

  renewToken(token) {
    if (!token || !this.conn) return;
    store.set("token", token);
    $("token").value = token;
    $("new-token").value = "";
    this.conn.setToken(token);
  }

  stopped(detail) {
    this.call.close();
    this.engine.stopRemote();
    this.lock.release();
    this.ptt.reset();
    this.people.clear();
    this.conn = null;
    this.show(false);
    this.engine.cue("left");
    if (this.diag) this.diag.log("stopped", detail);
    const code = detail.code || "";
    if (detail.reason === "replaced") this.signinError(t("error_replaced"));
    else if (String(code).startsWith("token") || detail.code === 4401) {
      this.signinError(t("error_token", { message: detail.message || code }));
    } else if (String(code).startsWith("channel") || detail.code === 4403) {
      this.signinError(t("error_channel", { message: detail.message || code }));
    } else if (detail.reason === "error") {
      this.signinError(t("error_generic", { message: detail.message || code }));
    } else if (detail.reason !== "left") {
      this.signinError(t("error_generic", { message: detail.reason }));
    }
    this.showStatus();
  }

  // ---------------------------------------------------------------- screen
  setMode(mode) {
    this.mode = mode;
    store.set("mode", mode);
    this.engine.setMode(mode);
    $("mode-vad").setAttribute("aria-checked", String(mode === "vad"));
    $("mode-ptt").setAttribute("aria-checked", String(mode === "ptt"));
    $("ptt").hidden = mode !== "ptt";
    if (mode !== "ptt" && this.ptt) this.ptt.reset();
  }

  show(inCall) {
    this.inCall = inCall;
    $("signin").hidden = inCall;
    $("call").hidden = !inCall;
    $("tap").hidden = !(inCall && this.engine.needsGesture);
    if (!inCall) {
      $("channel-name").textContent = "";
      $("warning").hidden = true;
      $("busy").hidden = true;
    }
  }

  showStatus() {
    const state = this.conn ? this.conn.state : "idle";
    let key = { connecting: "state_connecting", joined: "state_joined", reconnecting: "state_reconnecting" }[state] || "state_idle";
    const media = this.call.pc ? this.call.pc.connectionState : null;
    if (state === "joined" && media && media !== "connected") key = "state_media";
    $("status").textContent = t(key);
    $("status-dot").dataset.state = key === "state_joined" ? "ok" : state === "reconnecting" ? "bad" : "wait";
    document.body.dataset.state = state;
    document.body.dataset.media = media || "none";
  }

  warn(text, hideAfterMs = 0) {
    const el = $("warning");
    el.textContent = text;
    el.hidden = false;
    clearTimeout(this.warnTimer);
    if (hideAfterMs) this.warnTimer = setTimeout(() => (el.hidden = true), hideAfterMs);
  }

  signinError(text) {
    const el = $("signin-error");
    el.textContent = text;
    el.hidden = false;
  }
}

const app = new App();
app.init();
