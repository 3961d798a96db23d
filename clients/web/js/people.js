// Who is in the channel, who is talking: the state kept from the server's messages, and its
// rendering. Names come from tokens and are shown with textContent only.
import { t } from "./i18n.js";

export class People {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    this.you = null;
    this.others = new Map();
  }

  reset(you, participants) {
    this.you = you;
    this.others = new Map(participants.map((p) => [p.id, p]));
    this.render();
  }

  clear() {
    this.you = null;
    this.others.clear();
    this.render();
  }

  upsert(p) {
    if (this.you && p.id === this.you.id) this.you = p;
    else this.others.set(p.id, p);
    this.render();
  }

  remove(p) {
    this.others.delete(p.id);
    this.render();
  }

  talk(speaker, talking, slot) {
    const p = { ...speaker, talking, slot: talking ? slot : null };
    if (this.you && p.id === this.you.id) this.you = p;
    else if (this.others.has(p.id)) this.others.set(p.id, p);
    this.render();
  }

  render() {
    const items = [];
    if (this.you) items.push(this.item(this.you, true));
    const others = [...this.others.values()].sort((a, b) => a.name.localeCompare(b.name));
    for (const p of others) items.push(this.item(p, false));
    this.list.replaceChildren(...items);
    this.empty.hidden = this.others.size > 0 || !this.you;
  }

  item(p, self) {
    const li = document.createElement("li");
    li.className = "person";
    li.dataset.id = p.id;
    li.dataset.sub = p.sub;
    li.dataset.talking = p.talking ? "true" : "false";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = self ? `${p.name} (${t("you")})` : p.name;
    const state = document.createElement("span");
    state.className = "talk";
    state.textContent = p.talking ? `${t("talking")}${p.slot ? ` · ${p.slot}` : ""}` : "";
    li.append(name, state);
    return li;
  }
}
