// Small progressive enhancements for the dashboard; every page works without this script.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form instanceof HTMLFormElement ? form.dataset.confirm : undefined;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// The transcription banner: kept current while a page stays open (the live view above all).
(() => {
  const banner = document.getElementById("transcription-banner");
  if (!banner || !document.getElementById("me")) {
    return;
  }
  const show = (state) => {
    const text = state === "degraded" || state === "stopped" ? banner.dataset["text" + state[0].toUpperCase() + state.slice(1)] : "";
    banner.dataset.state = state;
    banner.textContent = text || "";
    banner.hidden = !text;
    banner.classList.toggle("stopped", state === "stopped");
  };
  const poll = async () => {
    try {
      const response = await fetch("/dashboard/transcription", { credentials: "same-origin", cache: "no-store" });
      if (response.ok) {
        show((await response.json()).state);
      }
    } catch (_) {
      // the server is unreachable: the page's own requests will say so
    }
  };
  setInterval(poll, 10000);
})();
