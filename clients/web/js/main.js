// The phone client: wires sign-in, the channel list, the connection, the call, the audio engine
// and the screen together. No framework, no build step, no inline script (the server sets a
// strict CSP).
//
// Two ways in: signed in (a one-time code or a password: the web session gives the channels one
// may talk in and short-lived join tokens, renewed silently), or a pasted token / device link
// (headsets, kiosks; a pasted token cannot be renewed by the app, the user is warned).
//
// Screens: #signin (signed out), #channels (signed in, not in a call), #call.
import { AudioEngine } from "./audio.js";
import { Call } from "./call.js";
import { Connection, signalingUrl } from "./connection.js";
import { Diagnostics } from "./diag.js";
import { EmergencyControl } from "./emergency.js";
import { applyTranslations, language, pickLanguage, setLanguage, t } from "./i18n.js";
import { readDeviceLink, tokenClaims, validChannel } from "./link.js";
import { People } from "./people.js";
import { bindPushToTalk } from "./ptt.js";
import { Replay } from "./replay.js";
import { SessionError, WebSession } from "./session.js";
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

// Where a fresh token comes from when the server says the current one expires: refresh()
// resolves to the new token or null. A pasted token has no source to renew from (the user is
// warned); a signed-in session asks the server (App.sessionTokens).
const pastedTokens = { refresh: async () => null };

// setTimeout takes at most 2^31-1 ms (24.8 days; a session may last 31): wait in steps.
function after(deadlineMs, fn) {
  const handle = { timer: null };
  const step = () => {
    const left = deadlineMs - performance.now();
    if (left <= 0) fn();
    else handle.timer = setTimeout(step, Math.min(left, 2 ** 30));
  };
  step();
  return handle;
}

function cancel(handle) {
  if (handle) clearTimeout(handle.timer);
}

// The message for a refused sign-in or join-token call (Japanese or English, by t()).
function refusal(err) {
  const code = err instanceof SessionError ? err.code : "network";
  switch (code) {
    case "locked":
      return t("err_locked", { seconds: Math.max(1, Math.ceil(err.retryAfter || 30)) });
    case "network":
      return t("err_network");
    case "user_disabled":
    case "session_expired":
    case "session_revoked":
    case "channel_removed":
      return t(code);
    case "channel_forbidden":
      return t("channel_removed");
    case "channel_not_found":
      return t("channel_gone");
    case "unauthorized":
      return t("session_expired");
    default:
      return t("error_generic", { message: code });
  }
}

function deviceId() {
  let id = store.get("device_id");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    id = `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
    store.set("device_id", id);
  }
  return id;
}

const STATS_MS = 5000;

class App {
  constructor() {
    this.engine = new AudioEngine();
    this.call = new Call();
    this.lock = new ScreenLock();
    this.people = new People($("people"), $("nobody"));
    this.talkers = new Set(); // ids of those talking to us now (a listener's stall: call.js)
    this.call.expectsAudio = () => this.talkers.size > 0;
    this.conn = null;
    this.mode = store.get("mode") === "ptt" ? "ptt" : "vad";
    this.tokens = pastedTokens;
    this.inCall = false;
    this.listenOnly = false;
    this.blocks = []; // channels whose slot m-lines the peer connection has, in order
    this.slotsPerBlock = 3;
    this.diag = null;
    this.session = new WebSession();
    this.signedInCall = false; // the call in progress uses the session's join tokens
    this.joinToken = null; // {token, channel, expiresAt, lifetime} of that call
    this.renewTimer = null;
    this.warnTimer = null;
    this.endTimer = null;
    this.busyForm = false;
    this.sessionTokens = { refresh: () => this.renewJoinToken(true) };
    this.replay = new Replay(
      {
        banner: $("replay-banner"),
        count: $("replay-count"),
        play: $("replay-play"),
        now: $("replay-now"),
        list: $("replay-list"),
        older: $("replay-older"),
        box: $("replay-box"),
      },
      () => (this.conn ? this.conn.token : ""),
    );
    window.voiceReplay = this.replay;
    this.bind();
  }

  bind() {
    $("join").addEventListener("click", () => this.join());
    $("code-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.signInWithCode($("code").value);
    });
    $("password-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.signInWithPassword($("name").value, $("password").value);
    });
    $("signout").addEventListener("click", () => this.signOut());
    $("signout-call").addEventListener("click", () => this.signOut());
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

    this.emergency = new EmergencyControl({
      els: {
        button: $("emergency"),
        countdown: $("emergency-countdown"),
        count: $("emergency-count"),
        state: $("emergency-state"),
        cancelOwn: $("emergency-cancel-own"),
        location: $("emergency-location"),
      },
      send: (message) => {
        if (this.conn) this.conn.send(message);
      },
      force: (on) => this.engine.setForced(on),
      t,
      me: () => (this.people.you ? this.people.you.sub : null),
      isActive: () => this.inCall,
      cue: (name) => this.engine.cue(name),
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
      // media again in this channel: what was said while we were away?
      if (e.detail.state === "connected" && this.conn && this.blocks[0]) {
        this.replay.check(this.blocks[0]);
      }
    });
    this.call.addEventListener("candidate", (e) => {
      if (this.diag) this.diag.log("candidate", { address: e.detail.address });
    });
    this.call.addEventListener("failed", () => {
      if (this.conn) this.conn.rejoin();
    });
    this.call.addEventListener("restart", (e) => {
      if (!this.conn || this.conn.state !== "joined") return;
      if (this.diag) this.diag.log("ice_restart", { why: e.detail.why });
      this.conn.send({ type: "ice_restart" });
    });
    // network diagnostics for the administrators' live view, every 5 s while media flows
    setInterval(() => this.reportNetwork(), STATS_MS);
  }

  async reportNetwork() {
    if (!this.conn || this.conn.state !== "joined" || !this.call.pc) return;
    if (this.call.pc.connectionState !== "connected") return;
    try {
      const stats = await this.call.networkReport();
      if (stats && this.conn) this.conn.send({ type: "stats", ...stats });
    } catch (err) {
      if (this.diag) this.diag.log("stats failed", { error: String(err) });
    }
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
    if (link && link.autojoin && token && $("channel").value) {
      this.join();
    } else if (link && link.code) {
      $("code").value = link.code;
      this.signInWithCode(link.code);
    } else {
      this.checkSession();
    }
  }

  // ---------------------------------------------------------------- signing in
  // Who is signed in on this browser: the channel list, or the sign-in screen (with why an
  // earlier sign-in ended, when the server knows).
  async checkSession(notice = "") {
    try {
      await this.session.refresh();
    } catch (err) {
      this.showSignin({ error: refusal(err) });
      return;
    }
    if (this.session.signedIn) this.showChannels();
    else this.showSignin({ notice, error: this.session.ended ? t(this.session.ended) : "" });
  }

  async signInWithCode(code) {
    const clean = String(code || "").replace(/[\s-]/g, "");
    if (!clean) return this.showSignin({ error: t("err_empty_code") });
    await this.signIn(() => this.session.redeemCode(clean), "err_code");
  }

  async signInWithPassword(name, password) {
    if (!name.trim() || !password) return this.showSignin({ error: t("err_empty_password") });
    await this.signIn(() => this.session.login(name.trim().toLowerCase(), password), "err_password");
  }

  // failedKey: the message for a refusal (wrong code, or wrong name or password)
  async signIn(attempt, failedKey) {
    if (this.busyForm) return;
    this.busyForm = true;
    if (document.body.dataset.screen !== "signin") this.showSignin();
    this.formsBusy(true);
    try {
      try {
        await attempt();
      } catch (err) {
        // a stale pre-session token (its cookie expired): fetch a fresh one and try once more
        if (!(err instanceof SessionError && err.code === "csrf")) throw err;
        await this.session.refresh();
        await attempt();
      }
      $("code").value = "";
      $("password").value = "";
      this.showChannels();
    } catch (err) {
      const failed = err instanceof SessionError && err.code === "signin_failed";
      this.showSignin({ error: failed ? t(failedKey) : refusal(err) });
    } finally {
      this.busyForm = false;
      this.formsBusy(false);
    }
  }

  formsBusy(busy) {
    for (const id of ["code-signin", "password-signin"]) {
      const button = $(id);
      button.disabled = busy;
      button.textContent = t(busy ? "signing_in" : "signin");
    }
  }

  async signOut() {
    this.endSignedInCall("signed_out");
    try {
      await this.session.logout();
    } catch {
      /* the cookie is gone for this page either way; the server forgets it at expiry */
    }
    this.clearSessionTimers();
    this.showSignin({ notice: t("signed_out") });
  }

  // The signed-in call (if any) ends now; `why` is shown on the sign-in or channel screen.
  endSignedInCall(why) {
    if (this.conn && this.signedInCall) this.conn.stop(why);
  }

  // ---------------------------------------------------------------- the session's clock
  armSessionTimers() {
    this.clearSessionTimers();
    const left = this.session.secondsLeft();
    if (left === null) return;
    const now = performance.now();
    const warnAt = now + Math.max(0, left - this.session.warningSeconds) * 1000;
    this.warnTimer = after(warnAt, () => this.sessionWarning());
    this.endTimer = after(now + left * 1000, () => this.sessionExpired());
  }

  clearSessionTimers() {
    cancel(this.warnTimer);
    cancel(this.endTimer);
    cancel(this.renewTimer);
    this.warnTimer = this.endTimer = this.renewTimer = null;
    $("session-warning").hidden = true;
  }

  sessionWarning() {
    const left = this.session.secondsLeft() || 0;
    const time = new Date(Date.now() + left * 1000).toLocaleTimeString(language(), {
      hour: "2-digit",
      minute: "2-digit",
    });
    const el = $("session-warning");
    el.textContent = t("session_warning", { time });
    el.hidden = false;
    this.engine.cue("warning");
  }

  sessionExpired() {
    this.endSignedInCall("session_expired");
    this.session.forget();
    this.clearSessionTimers();
    this.showSignin({ error: t("session_expired") });
  }

  // ---------------------------------------------------------------- channels
  showChannels(error = "") {
    this.showScreen("channels");
    const user = this.session.user;
    $("greeting").textContent = user ? t("signed_in_as", { name: user.display_name || user.name }) : "";
    const channels = this.session.channels;
    $("channel-list").replaceChildren(
      ...channels.map((ch) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "channel";
        button.dataset.channel = ch.name;
        const title = document.createElement("span");
        title.className = "channel-title";
        title.textContent = ch.display_name || ch.name;
        const slug = document.createElement("span");
        slug.className = "channel-slug";
        slug.textContent = ch.name;
        button.append(title, slug);
        button.addEventListener("click", () => this.joinSignedIn(ch.name));
        li.append(button);
        return li;
      }),
    );
    $("no-channels").hidden = channels.length > 0;
    const err = $("channels-error");
    err.textContent = error;
    err.hidden = !error;
    if (!this.warnTimer) this.armSessionTimers();
  }

  async joinSignedIn(channel) {
    if (this.conn || this.busyForm) return;
    this.busyForm = true;
    let grant;
    try {
      grant = await this.session.joinToken(channel);
    } catch (err) {
      this.busyForm = false;
      this.refused(err);
      return;
    }
    this.busyForm = false;
    this.joinToken = grant;
    this.signedInCall = true;
    this.tokens = this.sessionTokens;
    store.set("channel", channel);
    this.scheduleRenewal();
    await this.startCall(grant.token, channel);
  }

  // A refused session call: back to the sign-in screen when the session is gone, else to the
  // channel list (fetched again: a channel one left is no longer offered) with the reason.
  async refused(err) {
    const code = err instanceof SessionError ? err.code : "network";
    if (err instanceof SessionError && err.status === 401) {
      this.session.forget();
      this.clearSessionTimers();
      await this.checkSession();
      if (!this.session.signedIn && !this.session.ended) this.showSignin({ error: refusal(err) });
      return;
    }
    if (code !== "network") await this.session.refresh().catch(() => null);
    if (this.session.signedIn) this.showChannels(refusal(err));
    else this.showSignin({ error: refusal(err) });
  }

  // Renew the join token before it expires: at two thirds of its life, and at once when the
  // server says it expires (token_expiring). A token no later than the one in use (the join
  // token never outlives the web session) is not sent: the session's own warning covers that.
  scheduleRenewal() {
    cancel(this.renewTimer);
    const grant = this.joinToken;
    if (!grant) return;
    const at = grant.expiresAt - (grant.lifetime * 1000) / 3;
    this.renewTimer = after(at, () => this.renewJoinToken(false));
  }

  async renewJoinToken(asked) {
    const conn = this.conn;
    if (!conn || !this.signedInCall) return null;
    let grant;
    try {
      grant = await this.session.joinToken(conn.channel);
    } catch (err) {
      if (err instanceof SessionError && err.status) {
        this.conn.stop("refused_renewal");
        this.refused(err);
      } else {
        // the network is down: try again soon (the call reconnects by itself meanwhile)
        cancel(this.renewTimer);
        this.renewTimer = after(performance.now() + 5000, () => this.renewJoinToken(false));
      }
      return null;
    }
    if (conn !== this.conn) return null;
    const later = !this.joinToken || grant.serverExp > this.joinToken.serverExp;
    if (!later) return null;
    this.joinToken = grant;
    this.scheduleRenewal();
    if (asked) return grant.token; // tokenExpiring() hands it to the connection
    conn.setToken(grant.token);
    return null;
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
    if (link.code) {
      // someone (maybe someone else) signs in on this phone: the call in progress ends first
      if (this.conn) this.conn.stop("signed_out");
      $("code").value = link.code;
      this.signInWithCode(link.code);
      return;
    }
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
    if (this.conn) return;
    store.set("token", token);
    store.set("channel", channel);
    this.signedInCall = false;
    this.tokens = pastedTokens;
    await this.startCall(token, channel);
  }

  async startCall(token, channel) {
    $("signin-error").hidden = true;
    $("channels-error").hidden = true;
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
    conn.addEventListener("lost", (e) => this.lost(e.detail.why));
    conn.addEventListener("message", (e) => this.message(e.detail.message));
    conn.addEventListener("stopped", (e) => this.stopped(e.detail));
    conn.start(channel);
  }

  leave() {
    if (this.conn) this.conn.stop("left");
  }

  switchChannel() {
    const channel = $("switch-channel").value.trim();
    if (!this.conn || this.signedInCall || !validChannel(channel)) return;
    store.set("channel", channel);
    this.conn.switchChannel(channel);
  }

  joined(msg, reconnected) {
    this.call.setIceServers(msg.ice_servers); // the server's TURN relay, fresh credentials
    const name = msg.channel ? msg.channel.display_name || msg.channel.name : "";
    $("channel-name").textContent = name;
    this.blocks = [msg.channel ? msg.channel.name : ""];
    this.setListenOnly(msg.talk_right === "listener");
    $("switch-channel").value = "";
    this.people.reset(msg.you, msg.participants || []);
    // who talks now: a talk_stopped missed while away must not leave a talker behind
    this.talkers = new Set((msg.participants || []).filter((p) => p.talking).map((p) => p.id));
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

  lost(why) {
    this.engine.cue("disconnected");
    if (this.diag) this.diag.log("lost", { why });
    $("busy").hidden = true;
  }

  message(msg) {
    switch (msg.type) {
      case "offer":
        if (msg.renegotiate !== true) {
          this.slotsPerBlock = Math.max(1, (msg.sdp.match(/^m=audio/gm) || []).length - 1);
        }
        if (this.diag && msg.restart === true) this.diag.log("restart_offer");
        this.call.handleOffer(msg.sdp, msg.renegotiate === true, msg.revision).catch((err) => {
          this.warn(t("error_generic", { message: err.message || String(err) }));
        });
        break;
      case "participant_joined":
        this.people.upsert(msg.participant);
        break;
      case "participant_left":
        this.people.remove(msg.participant);
        this.cutIn({ speaker: msg.participant }, false); // a cut-in's talker who left
        this.hearing(msg.participant, false);
        break;
      case "talk_started":
      case "talk_stopped": {
        const started = msg.type === "talk_started";
        this.people.talk(msg.speaker, started, msg.slot);
        this.hearing(msg.speaker, started);
        this.cutIn(msg, started);
        if (started && this.people.you && msg.speaker.id === this.people.you.id) $("busy").hidden = true;
        break;
      }
      case "routed":
        for (const c of msg.hears || []) if (!this.blocks.includes(c)) this.blocks.push(c);
        break;
      case "duck": {
        const mid = this.slotMid(msg.channel, msg.slot);
        if (mid !== null) this.engine.duck(mid, msg.db);
        if (this.diag) this.diag.log("duck", { db: msg.db, mid });
        break;
      }
      case "talk_right": // an admin changed our right or level during the call
        this.setListenOnly(msg.talk_right === "listener");
        break;
      case "preempted":
        this.warn(t("preempted", { name: msg.by.name }), 6000);
        this.engine.cue("busy");
        break;
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
        this.talkers.clear();
        break;
      case "emergency_update":
        this.emergency.update(msg);
        break;
      case "error":
        if (msg.code && msg.code.startsWith("emergency_")) this.emergency.refused(msg.code);
        if (msg.code === "ice_restart_too_often") break; // the next network event asks again
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
    if (this.signedInCall) return; // capped by the session: its warning says when it ends
    const time = new Date(expiresAt * 1000).toLocaleTimeString();
    this.warn(t("token_expiring", { time }));
    $("settings").open = true;
  }

  renewToken(token) {
    if (!token || !this.conn) return;
    if (!this.signedInCall) {
      // a pasted token is remembered for the next start; a session's tokens never are
      store.set("token", token);
      $("token").value = token;
    }
    $("new-token").value = "";
    this.conn.setToken(token);
  }

  stopped(detail) {
    this.call.close();
    this.replay.stop();
    this.engine.stopRemote();
    this.lock.release();
    this.ptt.reset();
    this.people.clear();
    this.conn = null;
    this.show(false);
    this.engine.cue("left");
    if (this.diag) this.diag.log("stopped", detail);
    if (this.signedInCall) {
      this.signedInCall = false;
      this.joinToken = null;
      cancel(this.renewTimer);
      this.signedInStopped(detail);
      this.showStatus();
      return;
    }
    this.showScreen("signin");
    $("token-signin").open = true;
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

  // Where a signed-in call's end leads: the channel list (left, replaced, refused channel) or the
  // sign-in screen (signed out, the session expired or was revoked, the account disabled).
  signedInStopped(detail) {
    const reason = detail.reason;
    const code = String(detail.code || "");
    if (reason === "signed_out" || reason === "session_expired" || reason === "refused_renewal") return;
    if (reason === "left") {
      this.showChannels();
    } else if (reason === "replaced") {
      this.showChannels(t("error_replaced"));
    } else if (code === "user_disabled") {
      this.session.forget();
      this.clearSessionTimers();
      this.showSignin({ error: t("user_disabled") });
    } else if (code.startsWith("channel") || detail.code === 4403) {
      this.refused(new SessionError(code === "channel_not_found" ? code : "channel_forbidden", 403));
    } else {
      // a token problem (expired with the session?) or another error: ask the server
      const fallback = detail.message || code || reason;
      this.checkSession().then(() => {
        if (this.session.signedIn) this.showChannels(t("error_generic", { message: fallback }));
      });
    }
  }

  // ---------------------------------------------------------------- screen
  showScreen(name) {
    for (const id of ["signin", "channels", "call"]) $(id).hidden = id !== name;
    document.body.dataset.screen = name;
    this.inCall = name === "call";
    if (!this.inCall && this.emergency) this.emergency.reset();
  }

  showSignin({ notice = "", error = "" } = {}) {
    if (this.conn && this.signedInCall) this.conn.stop("session_expired");
    this.showScreen("signin");
    $("session-warning").hidden = true;
    const n = $("signin-notice");
    n.textContent = notice;
    n.hidden = !notice;
    const e = $("signin-error");
    e.textContent = error;
    e.hidden = !error;
    if ($("token").value.trim()) $("token-signin").open = true;
  }

  setMode(mode) {
    this.mode = mode;
    store.set("mode", mode);
    this.engine.setMode(mode);
    $("mode-vad").setAttribute("aria-checked", String(mode === "vad"));
    $("mode-ptt").setAttribute("aria-checked", String(mode === "ptt"));
    $("ptt").hidden = mode !== "ptt" || this.listenOnly;
    if (mode !== "ptt" && this.ptt) this.ptt.reset();
  }

  // Listen only (the channel's talk rights): no talk controls; the server drops what we send.
  setListenOnly(on) {
    this.listenOnly = on;
    $("listen-only").hidden = !on;
    document.querySelector("#call .modes").hidden = on;
    $("ptt").hidden = on || this.mode !== "ptt";
  }

  // The mid of a channel's slot: the own channel's block first, then monitored channels' in
  // the order they were added (the server's offers).
  slotMid(channel, slot) {
    const index = this.blocks.indexOf(channel || this.blocks[0]);
    return index < 0 ? null : String(index * this.slotsPerBlock + slot);
  }

  // Someone other than us started or stopped talking to us.
  hearing(speaker, started) {
    if (!speaker || (this.people.you && speaker.id === this.people.you.id)) return;
    if (started) this.talkers.add(speaker.id);
    else this.talkers.delete(speaker.id);
  }

  cutIn(msg, started) {
    const box = $("cut-in");
    const announcement = msg.kind === "announcement";
    const direct = msg.kind === "direct"; // a supervisor's console talking to us alone
    if (started && (announcement || direct)) this.engine.cue(msg.kind);
    if (started && (msg.priority >= 2 || announcement || direct)) {
      const key = announcement ? "announcement_playing" : direct ? "direct_talk" : "cutting_in";
      box.textContent = t(key, { name: msg.speaker.name });
      box.dataset.speaker = msg.speaker.id;
      box.hidden = false;
    } else if (!started && box.dataset.speaker === msg.speaker.id) {
      box.hidden = true;
      delete box.dataset.speaker;
    }
  }

  show(inCall) {
    if (inCall) this.showScreen("call");
    this.inCall = inCall;
    $("switch-box").hidden = this.signedInCall;
    $("token-renewal").hidden = this.signedInCall;
    $("signout-call").hidden = !this.signedInCall;
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
    $("status-dot").dataset.state =
      key === "state_joined" ? "ok" : state === "reconnecting" ? "bad" : key === "state_idle" ? "idle" : "wait";
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
    this.showScreen("signin");
    $("token-signin").open = true;
    const el = $("signin-error");
    el.textContent = text;
    el.hidden = false;
  }
}

const app = new App();
window.voiceAppStarted = true; // the boot guard (boot.js) reloads a page where this never ran
app.init();
