// The device link: /#channel=NAME&token=TOKEN&autojoin=1, and the sign-in code link /#code=CODE
// (a QR code opens /signin#code=…, which hands the code on here). The fragment never reaches a
// server (browsers do not send it), and it is removed from the address bar as soon as it is
// read, so neither the token nor the code stays in the history or gets shared by copying the URL.

export function readDeviceLink(loc = window.location, hist = window.history) {
  const hash = loc.hash.startsWith("#") ? loc.hash.slice(1) : loc.hash;
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const link = {
    channel: params.get("channel") || "",
    token: params.get("token") || "",
    autojoin: params.get("autojoin") === "1",
    mode: params.get("mode") || "",
    diag: params.get("diag") === "1",
    code: (params.get("code") || "").slice(0, 32),
  };
  if (!link.channel && !link.token && !link.code) return null;
  hist.replaceState(null, "", loc.pathname + loc.search);
  return link;
}

// The token's claims, decoded for display only (channel list, name, expiry): the server verifies.
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

const SLUG = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function validChannel(name) {
  return SLUG.test(name);
}
