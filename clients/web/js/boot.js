// Boot guard (a classic script, run before the app's modules). A phone whose network changes
// while the page loads (Wi-Fi to LTE on the way out of the building) has the requests still
// waiting for a connection failed by the browser (Chromium: net::ERR_NETWORK_CHANGED). One
// failed module fails the whole module graph: the app never starts and the page would sit on
// "Not connected" for good. So: when a script of the page fails to load, or the page finished
// loading without the app having started, reload once (at most once every 30 s, so a server that
// is really down does not make a loop), after the network is back if the phone is offline; when
// that did not help either, say so on the page.
(function () {
  "use strict";
  var KEY = "voice-boot-reload";
  var GAP_MS = 30000;
  var done = false;

  function started() {
    return window.voiceAppStarted === true;
  }

  function say(short, text, button) {
    var status = document.getElementById("status");
    if (status) status.textContent = short;
    var warning = document.getElementById("session-warning");
    if (!warning) return;
    warning.textContent = text;
    if (button) { // an installed app has no reload button of the browser's
      var b = document.createElement("button");
      b.type = "button";
      b.className = "mid boot-reload";
      b.textContent = button;
      b.addEventListener("click", function () { location.reload(); });
      warning.appendChild(document.createElement("br"));
      warning.appendChild(b);
    }
    warning.hidden = false;
  }

  function japanese() {
    var langs = navigator.languages || [navigator.language || ""];
    return String(langs[0] || "").toLowerCase().indexOf("ja") === 0;
  }

  function retry() {
    if (done || started()) return;
    done = true;
    var last = 0;
    try {
      last = Number(sessionStorage.getItem(KEY) || 0);
    } catch (e) {
      last = 0; // storage off: the page still reloads once (done guards this page)
    }
    if (Date.now() - last < GAP_MS) {
      if (japanese()) {
        say("読み込み失敗", "アプリを読み込めませんでした。ネットワークを確認して、再読み込みしてください。",
          "再読み込み");
      } else {
        say("Not loaded", "The app could not load. Check the network and reload.", "Reload");
      }
      return;
    }
    try {
      sessionStorage.setItem(KEY, String(Date.now()));
    } catch (e) {
      // nothing to remember it in: reload anyway
    }
    if (japanese()) say("再読み込み中…", "読み込みに失敗しました。再読み込みしています…");
    else say("Reloading…", "Loading failed. Reloading…");
    if (navigator.onLine === false) {
      window.addEventListener("online", function () { location.reload(); }, { once: true });
    } else {
      location.reload();
    }
  }

  // a script element whose fetch failed (for a module: any module of its graph)
  window.addEventListener("error", function (ev) {
    var el = ev.target;
    if (el && el.tagName === "SCRIPT") retry();
  }, true);
  // module scripts run before "load": a page loaded without the app has lost a module
  window.addEventListener("load", function () {
    if (!started()) retry();
  });
})();
