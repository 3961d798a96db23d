// /signin#code=XXXXXXXX (from a QR code): put the code in the code form. The code travels in the
// URL fragment, which the browser never sends to the server.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const match = /(?:^|[#&])code=([0-9A-Za-z-]{1,32})/.exec(window.location.hash);
  const input = document.getElementById("code");
  if (match && input instanceof HTMLInputElement) {
    input.value = match[1];
    history.replaceState(null, "", window.location.pathname + window.location.search);
    input.focus();
  }
});
