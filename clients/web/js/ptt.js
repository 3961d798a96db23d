// Push-to-talk inputs: the on-screen button (pointer), the space bar, and a headset's media
// button through the Media Session API where the browser exposes it (feature-detected; those
// buttons send single presses, so a press toggles talking on and off).
export function bindPushToTalk({ button, onPress, isActive }) {
  let pointer = null;
  let key = false;
  let latched = false;

  const press = () => onPress(true);
  const release = () => {
    if (pointer === null && !key && !latched) onPress(false);
  };

  button.addEventListener("pointerdown", (e) => {
    if (!isActive()) return;
    pointer = e.pointerId;
    button.setPointerCapture(e.pointerId);
    press();
    e.preventDefault();
  });
  const up = (e) => {
    if (pointer !== e.pointerId) return;
    pointer = null;
    release();
  };
  button.addEventListener("pointerup", up);
  button.addEventListener("pointercancel", up);
  button.addEventListener("contextmenu", (e) => e.preventDefault());

  const typing = (el) => el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.isContentEditable);
  window.addEventListener("keydown", (e) => {
    if (e.code !== "Space" || e.repeat || typing(e.target) || !isActive()) return;
    key = true;
    press();
    e.preventDefault();
  });
  window.addEventListener("keyup", (e) => {
    if (e.code !== "Space" || !key) return;
    key = false;
    release();
    e.preventDefault();
  });
  window.addEventListener("blur", () => {
    if (key) {
      key = false;
      release();
    }
  });

  const toggle = () => {
    if (!isActive()) return;
    latched = !latched;
    if (latched) press();
    else release();
  };
  const exposed = [];
  if ("mediaSession" in navigator) {
    for (const action of ["togglemicrophone", "play", "pause", "nexttrack"]) {
      try {
        navigator.mediaSession.setActionHandler(action, toggle);
        exposed.push(action);
      } catch {
        /* this browser does not know the action */
      }
    }
  }
  return {
    exposed,
    reset() {
      latched = false;
      key = false;
      pointer = null;
      onPress(false);
    },
  };
}
