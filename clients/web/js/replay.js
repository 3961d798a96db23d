// Missed-message replay: after the app (re)gains media in a channel it asks the server what the
// channel said in the last 24 h (GET /api/v1/replay/<channel>, with the call's join token) and,
// when some of it was said while this user had no connected media there on any device, shows
// "N messages while you were away" with one button that plays them oldest first, showing each
// one's speaker, time and text. The last 24 h are listed under "Last 24 hours" (with older pages).
// Bursts the transcriber has not committed yet come without text; the list is asked again every
// few seconds while such a burst is shown, so the text appears when it commits. Everything from
// the server is set with textContent (never as HTML).
import { t } from "./i18n.js";

const REFRESH_MS = 4000;
const REFRESH_TRIES = 30;
const SEEN_KEY = (channel) => `voice.replay.seen.${channel}`;

function seenUntil(channel) {
  try {
    return Number(localStorage.getItem(SEEN_KEY(channel)) || 0);
  } catch {
    return 0;
  }
}

function markSeen(channel, ms) {
  try {
    if (ms > seenUntil(channel)) localStorage.setItem(SEEN_KEY(channel), String(ms));
  } catch {
    /* private mode */
  }
}

function clock(iso) {
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export class Replay {
  // els: {banner, count, play, now, list, older, box}; token(): the call's join token
  constructor(els, token) {
    this.els = els;
    this.token = token;
    this.channel = null;
    this.items = []; // newest first: the first page, then older pages asked for
    this.first = [];
    this.older = [];
    this.cursor = null;
    this.queue = [];
    this.playing = null;
    this.played = []; // ids in the order they finished playing (tests and diagnostics)
    this.refreshTimer = null;
    this.refreshes = 0;
    this.audio = new Audio();
    this.audio.preload = "auto";
    this.audio.addEventListener("ended", () => this.next(true));
    this.audio.addEventListener("error", () => this.next(false));
    els.play.addEventListener("click", () => this.playMissed());
    els.older.addEventListener("click", () => this.loadOlder());
  }

  async fetchPage(cursor) {
    const params = new URLSearchParams();
    if (cursor) params.set("cursor", cursor);
    const res = await fetch(`/api/v1/replay/${encodeURIComponent(this.channel)}?${params}`, {
      headers: { Authorization: `Bearer ${this.token()}` },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (!res.ok) throw new Error(`replay ${res.status}`);
    return res.json();
  }

  // The app has connected media in `channel` (a join, a reconnection): what was missed?
  async check(channel) {
    if (channel !== this.channel) {
      this.stop();
      this.items = [];
      this.first = [];
      this.older = [];
      this.cursor = null;
    }
    this.channel = channel;
    this.refreshes = 0;
    await this.refresh(true);
  }

  async refresh(announce) {
    clearTimeout(this.refreshTimer);
    if (!this.channel) return;
    let body;
    try {
      body = await this.fetchPage(null);
    } catch {
      return;
    }
    this.first = body.items;
    if (!this.older.length) this.cursor = body.next_cursor;
    this.items = [...this.first, ...this.older.filter((o) => !this.first.some((i) => i.id === o.id))];
    if (announce) {
      const seen = seenUntil(this.channel);
      this.queue = body.items.filter((i) => i.missed && Date.parse(i.end) > seen).reverse();
      this.showBanner();
    }
    this.render();
    if (this.items.some((i) => !i.committed) && this.refreshes++ < REFRESH_TRIES) {
      this.refreshTimer = setTimeout(() => this.refresh(false), REFRESH_MS);
    }
  }

  async loadOlder() {
    if (!this.cursor) return;
    try {
      const body = await this.fetchPage(this.cursor);
      this.older = [...this.older, ...body.items];
      this.cursor = body.next_cursor;
      this.items = [...this.first, ...this.older];
    } catch {
      /* kept as it was */
    }
    this.render();
  }

  showBanner() {
    const n = this.playing ? this.queue.length + 1 : this.queue.length;
    this.els.banner.hidden = n === 0;
    this.els.count.textContent = t("replay_missed", { n });
  }

  playMissed() {
    if (!this.queue.length || this.playing) return;
    this.next(false);
  }

  play(item) {
    this.stop();
    this.queue = [item];
    this.next(false);
  }

  next(finished) {
    if (this.playing && finished) {
      this.played.push(this.playing.id);
      markSeen(this.channel, Date.parse(this.playing.end));
    }
    const item = this.queue.shift();
    this.playing = item || null;
    this.els.box.dataset.playing = item ? item.id : "";
    if (!item) {
      this.els.now.hidden = true;
      this.showBanner();
      this.render();
      return;
    }
    this.showBanner();
    this.showNow(item);
    this.audio.src = item.clip_url;
    this.audio.play().catch(() => this.next(false));
    this.render();
  }

  stop() {
    this.queue = [];
    this.playing = null;
    this.audio.removeAttribute("src");
    this.els.now.hidden = true;
  }

  showNow(item) {
    const now = this.els.now;
    now.hidden = false;
    now.replaceChildren(...this.describe(item));
  }

  describe(item) {
    const head = document.createElement("span");
    head.className = "replay-head";
    head.textContent = `${clock(item.start)} ${item.speaker_name}`;
    const text = document.createElement("span");
    text.className = "replay-text";
    text.textContent = item.committed ? item.text : t("replay_transcribing");
    return [head, text];
  }

  render() {
    const list = this.els.list;
    list.replaceChildren();
    for (const item of this.items) {
      const li = document.createElement("li");
      li.dataset.id = item.id;
      li.dataset.missed = String(item.missed);
      li.dataset.committed = String(item.committed);
      if (this.playing && this.playing.id === item.id) li.dataset.playing = "true";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "replay-item";
      button.disabled = !item.clip_url;
      button.append(...this.describe(item));
      button.addEventListener("click", () => this.play(item));
      li.append(button);
      list.append(li);
    }
    this.els.older.hidden = !this.cursor;
    this.els.box.hidden = this.items.length === 0;
    if (this.playing) {
      const fresh = this.items.find((i) => i.id === this.playing.id);
      if (fresh) this.showNow(fresh); // its text may have committed meanwhile
    }
  }
}
