// The alert banner and its sound on every dashboard page of a supervisor or admin, fed by
// /dashboard/events/ws. Browsers block audio before a user gesture: until the page has had a
// click the banner offers "enable alert sound". Silencing stops the sound on this page only and
// does not acknowledge: the banner stays until someone acknowledges the alert.
"use strict";
(() => {
  const banner = document.getElementById("alert-banner");
  if (!banner || !document.getElementById("me")) {
    return;
  }
  const list = document.getElementById("alert-list");
  const enable = document.getElementById("alert-enable-sound");
  const silence = document.getElementById("alert-silence");
  const silencedNote = document.getElementById("alert-silenced");
  const inbox = document.getElementById("alert-inbox") || document.getElementById("alert-inbox-empty");
  const stale = document.getElementById("inbox-stale");
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const text = (key) => banner.dataset["t" + key[0].toUpperCase() + key.slice(1)] || key;
  const alerts = new Map(); // id -> alert (open ones)
  let silenced = false;
  let audio = null;
  let beepTimer = null;

  // ---------------------------------------------------------------- sound
  const context = () => {
    if (!audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      audio = Ctx ? new Ctx() : null;
    }
    return audio;
  };
  const beep = () => {
    const ctx = context();
    if (!ctx || ctx.state !== "running") {
      return false;
    }
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
    return true;
  };
  const unattended = () => [...alerts.values()].some((a) => a.state === "raised");
  const updateSound = () => {
    const ctx = context();
    const need = unattended();
    const running = Boolean(ctx && ctx.state === "running");
    enable.hidden = running || !ctx;
    silence.hidden = !need || silenced || !running;
    silencedNote.hidden = !(need && silenced);
    let mode = "off";
    if (running) {
      mode = need ? (silenced ? "silenced" : "playing") : "ready";
    }
    banner.dataset.sound = mode;
    if (mode === "playing" && !beepTimer) {
      beep();
      beepTimer = setInterval(() => {
        if (banner.dataset.sound === "playing") {
          beep();
        }
      }, 1500);
    } else if (mode !== "playing" && beepTimer) {
      clearInterval(beepTimer);
      beepTimer = null;
    }
  };
  const resume = () => {
    const ctx = context();
    if (ctx && ctx.state !== "running") {
      ctx.resume().then(updateSound, updateSound);
    }
  };
  document.addEventListener("click", resume, { capture: true });
  enable.addEventListener("click", resume);
  silence.addEventListener("click", () => {
    silenced = true; // this page only; the alert stays unattended
    updateSound();
  });

  // ---------------------------------------------------------------- banner
  const acknowledge = async (id, button) => {
    button.disabled = true;
    try {
      const response = await fetch(`/api/v1/alerts/${encodeURIComponent(id)}/acknowledge`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRF-Token": csrf },
      });
      if (response.ok) {
        show(await response.json());
        return;
      }
    } catch (_) {
      // the event stream will say what happened
    }
    button.disabled = false;
  };
  const item = (a) => {
    const li = document.createElement("li");
    li.className = `alert-item kind-${a.kind} state-${a.state}`;
    li.dataset.id = a.id;
    li.dataset.state = a.state;
    const add = (cls, value) => {
      const span = document.createElement("span");
      span.className = cls;
      span.textContent = value; // user text is always text
      li.appendChild(span);
    };
    add("kind", text(a.kind));
    if (a.keyword) {
      add("keyword", `「${a.keyword}」`);
    }
    add("channel", a.channel || text("deployment"));
    if (a.subject_name) {
      add("subject", a.subject_name);
    }
    add("time", new Date(a.raised_ms).toLocaleTimeString());
    if (a.escalated) {
      add("escalated", text("escalated"));
    }
    if (a.state === "raised") {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "alert-ack";
      button.textContent = text("ack");
      button.addEventListener("click", () => acknowledge(a.id, button));
      li.appendChild(button);
    } else if (a.acknowledged) {
      add("acked", `${text("acked")}: ${a.acknowledged.name}`);
    }
    const link = document.createElement("a");
    link.href = `/dashboard/alerts/${encodeURIComponent(a.id)}${a.utterance ? "?play=1" : ""}`;
    link.textContent = text("open");
    li.appendChild(link);
    return li;
  };
  const render = () => {
    const open = [...alerts.values()].sort((x, y) => y.raised_ms - x.raised_ms);
    list.replaceChildren(...open.map(item));
    banner.hidden = open.length === 0;
    updateSound();
  };
  const show = (a) => {
    const known = alerts.get(a.id);
    if (a.state === "resolved") {
      alerts.delete(a.id);
    } else {
      if (!known && a.state === "raised") {
        silenced = false; // a new alert sounds again
      }
      alerts.set(a.id, a);
    }
    if (inbox && stale && !document.querySelector(`[data-id="${CSS.escape(a.id)}"][data-state="${CSS.escape(a.state)}"]:not(li)`)) {
      stale.hidden = false;
    }
    render();
  };

  // ---------------------------------------------------------------- event stream
  // a dead server is noticed within 5 s (heartbeat.js), then the same reconnect as for a close;
  // the banner's state says whether the stream is live
  let delay = 1000;
  const connect = () => {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    window.dashboardSocket(`${scheme}://${location.host}/dashboard/events/ws`, {
      open: (ws) => {
        delay = 1000;
        ws.send(JSON.stringify({ type: "hello", csrf }));
      },
      message: (event) => {
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (_) {
          return;
        }
        if (msg.type === "snapshot") {
          banner.dataset.stream = "live";
          alerts.clear();
          msg.alerts.forEach((a) => alerts.set(a.id, a));
          render();
        } else if (msg.type === "alert") {
          show(msg.alert);
        }
      },
      gone: (code) => {
        banner.dataset.stream = "lost";
        if (code === 4401 || code === 4403) {
          return; // signed out or refused: the page itself will say so
        }
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      },
    });
  };
  updateSound();
  connect();
})();
