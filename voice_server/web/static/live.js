// The live view of a channel: presence, captions and recorded utterances over a WebSocket.
// Text from the server is only ever put in the page with textContent (never as HTML).
"use strict";
(() => {
  const root = document.getElementById("live");
  if (!root) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("live-status");
  const people = document.getElementById("participants");
  const captions = document.getElementById("captions");
  const feed = document.getElementById("feed");
  const texts = root.dataset;
  const partials = new Map();
  let delay = 1000;

  function item(tag, cls, parts) {
    const el = document.createElement(tag);
    if (cls) el.className = cls;
    for (const [pcls, text] of parts) {
      const span = document.createElement("span");
      span.className = pcls;
      span.textContent = text;
      el.append(span, " ");
    }
    return el;
  }

  // the participant's last network report (client-reported): path, rtt, loss, jitter
  function netText(d) {
    if (!d) return "";
    const parts = [d.path.toUpperCase()];
    if (d.rtt_ms != null) parts.push(`rtt ${Math.round(d.rtt_ms)} ms`);
    if (d.loss != null) parts.push(`loss ${(d.loss * 100).toFixed(1)} %`);
    if (d.jitter_ms != null) parts.push(`jitter ${Math.round(d.jitter_ms)} ms`);
    if (d.concealed_ratio != null) parts.push(`concealed ${(d.concealed_ratio * 100).toFixed(1)} %`);
    return parts.join(" · ");
  }

  function presence(list) {
    people.replaceChildren(...list.map((p) => {
      const state = p.talking ? texts.talking : (p.online ? "" : texts.away);
      // in a cluster, the node the participant is connected to (README "Live view across nodes")
      const node = p.node ? `${texts.node} ${p.node}` : "";
      const li = item("li", p.talking ? "talking" : "", [["display-name", p.name], ["state", state], ["node", node], ["net", netText(p.diag)]]);
      li.dataset.sub = p.sub;
      if (p.diag) li.dataset.path = p.diag.path;
      return li;
    }));
  }

  function partial(msg) {
    let li = partials.get(msg.id);
    if (!li) {
      li = item("li", "partial", [["speaker-name", msg.speaker_name], ["text", ""]]);
      li.dataset.id = msg.id;
      partials.set(msg.id, li);
      captions.append(li);
    }
    li.querySelector(".text").textContent = msg.text;
  }

  function utterance(msg) {
    const old = partials.get(msg.id);
    if (old) { old.remove(); partials.delete(msg.id); }
    const li = item("li", "hit", [["time", msg.time], ["speaker-name", msg.speaker_name], ["text", msg.text]]);
    li.dataset.id = msg.id;
    feed.prepend(li);
    while (feed.children.length > 200) feed.lastElementChild.remove();
  }

  // a dead server is noticed within 5 s (heartbeat.js), then the same reconnect as for a close
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    window.dashboardSocket(`${scheme}//${location.host}${location.pathname}/ws`, {
      open: (ws) => { ws.send(JSON.stringify({ type: "hello", csrf })); },
      message: (event) => {
        const msg = JSON.parse(event.data);
        if (msg.type === "presence") { presence(msg.participants); status.textContent = texts.connected; delay = 1000; }
        else if (msg.type === "partial") partial(msg);
        else if (msg.type === "utterance") utterance(msg);
        else if (msg.type === "dropped") status.textContent = `${texts.dropped} ${msg.count}`;
      },
      gone: (code) => {
        status.textContent = texts.closed;
        if (code === 4401 || code === 4403 || code === 4404) return;
        setTimeout(connect, delay);
        delay = Math.min(delay * 2, 30000);
      },
    });
  }
  connect();
})();
