// /signin#code=XXXXXXXX (from a QR code). The code travels in the URL fragment, which the browser
// never sends to a server. When the phone app is served, the code goes on to it (/#code=…): the
// app redeems it and shows what went wrong in its own words; else it is put in the code form.
"use strict";
(() => {
  const match = /(?:^|[#&])code=([0-9A-Za-z-]{1,32})/.exec(window.location.hash);
  if (!match) return;
  const code = match[1];
  history.replaceState(null, "", window.location.pathname + window.location.search);
  document.addEventListener("DOMContentLoaded", () => {
    const app = document.querySelector('meta[name="phone-app"]');
    if (app && app.getAttribute("content") === "/") {
      window.location.replace(`/#code=${encodeURIComponent(code)}`);
      return;
    }
    const input = document.getElementById("code");
    if (input instanceof HTMLInputElement) {
      input.value = code;
      input.focus();
    }
  });
})();
