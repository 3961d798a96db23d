"""The newcomer's path, walked as a new user walks it (run by ``scripts/ci-smoke.sh``, inside a
private network namespace; see ``voice_server/bench/netns.py``).

In a fresh clone whose ``make run`` installed the runtime only: ``make run`` with its defaults
(HTTPS, the demo organisation, the transcriber), ``/readyz``; the demo supervisor signs in to
the dashboard in Chromium and makes a one-time sign-in code for the demo staff member; the staff
member opens its link (the QR code's) in a phone-sized Chromium whose microphone plays Korean
speech, lands in the phone app, taps a channel and talks; then the supervisor finds the
utterance in the call log (listed, and found by a word that direct Vosk decoding of the same
audio yields). Every failure names the step that broke. Prints the figures as JSON at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "clients" / "headset")]

from tests.speech import SENTENCES, speech_wav  # noqa: E402
from voice_server.bench import browser  # noqa: E402

STAFF, SUPERVISOR, CHANNEL = "sato", "tanaka", "shelter-a"


class StepFailed(Exception):
    pass


class Walk:
    def __init__(self, clone: Path, port: int, deadline: float) -> None:
        self.clone = clone
        self.port = port
        self.url = f"https://127.0.0.1:{port}"
        self.deadline = deadline
        self.step = "start"
        self.figures: dict[str, Any] = {}
        self.t0 = time.monotonic()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = clone / "make-run.log"

    def at(self, step: str) -> None:
        self.step = step
        print(f"[{time.monotonic() - self.t0:6.1f} s] {step}", flush=True)

    def fail(self, why: str) -> StepFailed:
        tail = self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""
        return StepFailed(
            f"step '{self.step}' failed: {why}\n--- make run output (tail) ---\n{tail}"
        )

    def wait(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        end = min(time.monotonic() + timeout, self.deadline)
        last: Exception | None = None
        while time.monotonic() < end:
            try:
                value = check()
                if value:
                    return value
            except Exception as exc:  # report the last one if it never works
                last = exc
            time.sleep(0.25)
        raise self.fail(
            f"timed out waiting for {what}" + (f" (last error: {last})" if last else "")
        )

    # ------------------------------------------------------------------ the server
    def make_run(self) -> None:
        self.at("make run")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                ["make", "run", f"PORT={self.port}"],
                cwd=self.clone,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def get(self, path: str) -> tuple[int, str]:
        ctx = ssl.create_default_context(cafile=str(self.clone / "data" / "tls" / "cert.pem"))
        try:
            with urllib.request.urlopen(self.url + path, context=ctx, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def readyz(self) -> None:
        self.at("/readyz")

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise self.fail(f"make run exited with {self.proc.returncode}")
            status, body = self.get("/readyz")
            return status == 200 and json.loads(body)["ready"] is True

        self.wait(ready, 300, "/readyz to answer ready")
        self.figures["ready_s"] = round(time.monotonic() - self.t0, 1)
        self.at("transcription up")

        def up() -> bool:
            return json.loads(self.get("/readyz")[1])["checks"].get("transcription") == "up"

        self.wait(up, 120, "checks.transcription == 'up' (the transcriber linked over HTTPS)")

    def password(self, name: str) -> str:
        match = re.search(rf"name={name} password=(\S+)", self.log.read_text(errors="replace"))
        if not match:
            raise self.fail(f"make run printed no 'name={name} password=' line")
        return match.group(1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def direct_words(wav: Path) -> list[str]:
    """Words that Vosk's Korean model yields decoding the speech directly (the reference)."""
    from voice_server.transcribe.catalogue import resolve
    from voice_server.transcribe.direct import recognize_file
    from voice_server.transcribe.recognizer import VoskFactory

    choice = resolve(None, ROOT / "models", None)
    factory = VoskFactory(choice.path, name=choice.name, language=choice.language)
    text = recognize_file(factory, wav).text
    return [w for w in text.split() if len(w) >= 2]


def walk(walk: Walk, work: Path) -> None:
    from playwright.sync_api import sync_playwright

    walk.make_run()
    walk.readyz()
    wav = speech_wav(work / "speech.wav", SENTENCES[:2], gap_seconds=1.0)
    words = direct_words(wav)
    if not words:
        raise walk.fail("direct Vosk decoding of the smoke's speech gave no word")
    with sync_playwright() as pw:
        walk.at("supervisor signs in to the dashboard")
        sup_browser = browser.launch_chromium(pw, audio_file=None)
        sup = sup_browser.new_context(ignore_https_errors=True, locale="ja-JP").new_page()
        sup.goto(f"{walk.url}/signin?next=/dashboard")
        sup.fill("input[name=name]", SUPERVISOR)
        sup.fill("input[name=password]", walk.password(SUPERVISOR))
        sup.click("form#password-form button[type=submit]")
        walk.wait(lambda: "/dashboard" in sup.url, 30, "the dashboard after signing in")

        walk.at("supervisor makes a one-time sign-in code for the staff member")
        sup.goto(f"{walk.url}/dashboard/codes")
        sup.select_option("select[name=user]", STAFF)
        sup.click("form[action='/dashboard/codes'] button[type=submit]")
        link = walk.wait(
            lambda: sup.text_content("#created-code .url code"), 30, "the code's link (QR)"
        )
        if "/signin#code=" not in link:
            raise walk.fail(f"the code's link is not a /signin#code= link: {link!r}")

        walk.at("staff member opens the code's link on a phone")
        phone_browser = browser.launch_chromium(pw, audio_file=wav)
        phone = phone_browser.new_context(
            ignore_https_errors=True,
            locale="ja-JP",
            viewport={"width": 390, "height": 844},
            is_mobile=True,
            has_touch=True,
        ).new_page()
        errors: list[str] = []
        phone.on("pageerror", lambda e: errors.append(str(e)))
        phone.goto(link.strip())

        walk.at("the phone app lists the staff member's channels")
        walk.wait(
            lambda: phone.is_visible("#channel-list li"), 60, "the channel list in the phone app"
        )
        if phone.is_visible("#token"):
            raise walk.fail("the phone app asks for a token")
        phone.screenshot(path=str(work / "phone-channels.png"))

        walk.at("staff member taps the channel and talks")
        phone.click(f"#channel-list [data-channel='{CHANNEL}']")
        walk.wait(
            lambda: phone.get_attribute("#status-dot", "data-state") == "ok",
            60,
            "the call to connect (status dot 'ok')",
        )
        talk_start = time.time()
        spoken = len(SENTENCES[:2]) * 4.0 + 4.0
        phone.wait_for_timeout(int(spoken * 1000))  # the fake microphone plays the speech
        phone.screenshot(path=str(work / "phone-call.png"))
        phone.click("#leave")
        talk_end = time.time()
        if errors:
            raise walk.fail(f"the phone app threw: {errors[:3]}")

        walk.at("supervisor finds the utterance in the call log")
        found_at: list[float] = []

        def listed() -> bool:
            r = sup.request.get(f"{walk.url}/api/v1/utterances?speaker={STAFF}&channel={CHANNEL}")
            items = r.json().get("items", []) if r.ok else []
            for item in items:
                start = _epoch(item["start"])
                if talk_start - 2 <= start <= talk_end + 2:
                    found_at.append(time.time())
                    return True
            return False

        walk.wait(listed, 90, f"an utterance by {STAFF} from the talk's time window")
        walk.figures["listed_after_talk_s"] = round(found_at[0] - talk_end, 1)
        sup.goto(f"{walk.url}/dashboard/search?q=&speaker={STAFF}&channel={CHANNEL}")
        walk.wait(lambda: sup.is_visible("#hits li.hit"), 30, "the utterance on the search page")

        walk.at("supervisor searches for a word of the speech")

        def searched() -> str | None:
            for word in words:
                sup.goto(f"{walk.url}/dashboard/search?q={urllib.parse.quote(word)}")
                if sup.is_visible("#hits li.hit"):
                    return word
            return None

        word = walk.wait(searched, 30, f"a search hit for one of {words}")
        walk.figures["searched_word"] = word
        sup.screenshot(path=str(work / "dashboard-search.png"), full_page=True)
        sup_browser.close()
        phone_browser.close()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clone", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--started", type=float, help="epoch seconds the smoke began")
    args = parser.parse_args()
    work = args.clone / "smoke"
    work.mkdir(exist_ok=True)
    w = Walk(args.clone, args.port, time.monotonic() + args.timeout)
    try:
        walk(w, work)
    except StepFailed as exc:
        print(f"newcomer smoke: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"newcomer smoke: step '{w.step}' failed: {exc!r}", file=sys.stderr)
        return 1
    finally:
        w.stop()
    w.figures["walk_s"] = round(time.monotonic() - w.t0, 1)
    if args.started:
        w.figures["total_s_with_install"] = round(time.time() - args.started, 1)
    print("newcomer smoke passed: " + json.dumps(w.figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
