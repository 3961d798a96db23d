// The web session of a signed-in staff member (docs/security.md, "Sign-in API"): sign in with a
// one-time code or a password, the channels one may talk in, short-lived join tokens for one
// channel at a time, sign-out. The session itself is an HttpOnly cookie the script never sees;
// state-changing calls carry the CSRF token the server hands out (X-CSRF-Token). Tokens stay in
// memory: never in a URL, never in storage.

const API = "/api/v1/auth";

// A refused call, with the server's stable code (signin_failed, locked, channel_forbidden,
// session_expired, user_disabled, …) or "network" when the server could not be reached.
export class SessionError extends Error {
  constructor(code, status = 0, retryAfter = 0) {
    super(code);
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

// Seconds from now, on this device's monotonic clock (the phone's wall clock may be off; the
// server says how long is left, not when).
function deadline(seconds) {
  return performance.now() + seconds * 1000;
}

export class WebSession {
  constructor() {
    this.csrf = "";
    this.user = null;
    this.endsAt = null; // performance.now() deadline of the session
    this.warningSeconds = 0;
    this.ended = null; // why an earlier session no longer works (server's word)
  }

  get signedIn() {
    return this.user !== null;
  }

  get channels() {
    return this.user && Array.isArray(this.user.channels) ? this.user.channels : [];
  }

  // Seconds left, by the server's count when it last answered.
  secondsLeft() {
    return this.endsAt === null ? null : Math.max(0, (this.endsAt - performance.now()) / 1000);
  }

  take(info) {
    this.csrf = info.csrf_token || "";
    // a session whose own deadline has passed, answered "not signed in" without a reason (the
    // server may have purged it already): it expired, and the sign-in screen says so
    const lapsed = this.user !== null && this.endsAt !== null && this.endsAt - performance.now() <= 1000;
    this.ended = info.ended || (lapsed && !info.authenticated ? "session_expired" : null);
    if (info.authenticated && info.user) {
      this.user = info.user;
      this.endsAt = typeof info.expires_in === "number" ? deadline(info.expires_in) : null;
      this.warningSeconds = info.warning_seconds || 0;
    } else {
      this.user = null;
      this.endsAt = null;
    }
    return this;
  }

  forget() {
    this.user = null;
    this.endsAt = null;
  }

  async call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = this.csrf;
    let res;
    try {
      res = await fetch(`${API}/${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch {
      throw new SessionError("network");
    }
    if (res.status === 204) return null;
    let data = null;
    try {
      data = await res.json();
    } catch {
      data = null;
    }
    if (!res.ok) {
      const detail = data && typeof data.detail === "object" && !Array.isArray(data.detail) ? data.detail : {};
      const code = typeof detail.code === "string" ? detail.code : res.status === 422 ? "invalid" : `http_${res.status}`;
      const retry = Number(res.headers.get("Retry-After")) || 0;
      throw new SessionError(code, res.status, retry);
    }
    return data;
  }

  // Who is signed in (also hands out the pre-session CSRF token before sign-in).
  async refresh() {
    return this.take(await this.call("GET", "session"));
  }

  async redeemCode(code) {
    if (!this.csrf) await this.refresh();
    const clean = String(code).replace(/[\s-]/g, "").toUpperCase();
    return this.take(await this.call("POST", "code", { code: clean.slice(0, 32) }));
  }

  async login(name, password) {
    if (!this.csrf) await this.refresh();
    return this.take(await this.call("POST", "login", { name, password }));
  }

  async logout() {
    try {
      await this.call("POST", "logout");
    } finally {
      this.forget();
      this.csrf = "";
    }
  }

  // {token, channel, expiresAt (performance.now() deadline), lifetime (s), serverExp (the
  // token's exp: tokens are compared by it)}
  async joinToken(channel) {
    const data = await this.call("POST", "join-token", { channel });
    const lifetime = Math.max(0, Number(data.expires_in) || 0);
    return {
      token: data.token,
      channel: data.channel,
      expiresAt: deadline(lifetime),
      lifetime,
      serverExp: Number(data.expires_at) || 0,
    };
  }
}
