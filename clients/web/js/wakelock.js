// Keep the screen on while in a channel, where the Screen Wake Lock API exists (feature-detected).
// The browser drops the lock when the page is hidden; it is taken again when visible.
export class ScreenLock {
  constructor() {
    this.wanted = false;
    this.lock = null;
    document.addEventListener("visibilitychange", () => {
      if (this.wanted && document.visibilityState === "visible") this.take();
    });
  }

  get supported() {
    return "wakeLock" in navigator;
  }

  async acquire() {
    this.wanted = true;
    await this.take();
  }

  async take() {
    if (!this.supported || this.lock) return;
    try {
      this.lock = await navigator.wakeLock.request("screen");
      this.lock.addEventListener("release", () => {
        this.lock = null;
      });
    } catch {
      this.lock = null; // not allowed now (hidden page, battery saver): try again when visible
    }
  }

  release() {
    this.wanted = false;
    if (this.lock) this.lock.release().catch(() => {});
    this.lock = null;
  }
}
