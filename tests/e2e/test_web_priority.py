"""The phone app under a supervisor's cut-in (Chromium, private network namespace): a listen-only
member sees no talk controls, is told who cuts in, and plays the other slots ducked."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from tests.audio import write_tone
from tests.e2e.conftest import device_link, open_page, wait_for
from tests.integration.test_priority import accounts, client, delayed_tone
from tests.servers import ServerProcess

pytestmark = pytest.mark.e2e


def slot_energy(page: Any, mid: str) -> tuple[float, float] | None:
    stats = page.evaluate(f"window.voiceDiag.stats().then((s) => s && s.inbound['{mid}'])")
    if not stats or stats.get("totalAudioEnergy") is None:
        return None
    return float(stats["totalAudioEnergy"]), float(stats["totalSamplesDuration"])


def played_db(page: Any, mid: str) -> float | None:
    """The level slot ``mid`` was played at over the last half second (dB): Chromium's
    inbound-rtp audio energy, measured as played (after the element's volume)."""
    first = slot_energy(page, mid)
    time.sleep(0.5)  # the stretch measured (not a synchronisation)
    last = slot_energy(page, mid)
    if first is None or last is None or last[1] <= first[1]:
        return None
    return 10 * math.log10((last[0] - first[0]) / (last[1] - first[1]) + 1e-12)


def level_where(page: Any, ok: Any, what: str, timeout: float = 30.0) -> float:
    """Wait for the slot-1 level to satisfy ``ok``; that level."""
    found = wait_for(
        lambda: [d for d in [played_db(page, "1")] if d is not None and ok(d)], what, timeout
    )
    return float(found[0])


def ducks(page: Any) -> list[int]:
    return [e["db"] for e in page.evaluate("window.voiceDiag.events") if e["kind"] == "duck"]


def test_a_listener_page_shows_listen_only_and_ducks_the_other_slots(
    pw: Any, e2e_server: ServerProcess, tmp_path: Path
) -> None:
    srv = e2e_server
    accounts(srv)
    # the staff tone must outlast the whole cut-in however slowly a busy machine runs it (it is
    # stopped at the end; sent with the gate open: a steady tone stops counting as voice after
    # ~15 s)
    ann = client(srv, tmp_path, "s1", play=write_tone(tmp_path / "a.wav", 440, 2.0), loop=True,
                 duration=300, mode="open")  # fmt: skip
    page = open_page(pw, device_link(srv, srv.token("lis", "ops")), audio=None)
    try:
        wait_for(lambda: page.is_visible("#listen-only"), "the listen-only note")
        assert not page.is_visible("#call .modes") and not page.is_visible("#ptt")
        before = level_where(page, lambda d: d > -40, "staff audio played on slot 1", 40)
        sup_file = delayed_tone(tmp_path / "sup.wav", 880, 1.0, 6.0)
        sup = client(srv, tmp_path, "sup", role="supervisor", play=sup_file, duration=12)
        wait_for(lambda: -15 in ducks(page), "the duck", timeout=40)
        banner = page.text_content("#cut-in") or ""
        during = level_where(page, lambda d: d <= before - 10, "slot 1 ducked by >= 10 dB")
        wait_for(lambda: 0 in ducks(page), "the duck's end", timeout=40)
        after = level_where(page, lambda d: d >= before - 3, "slot 1 back to its level")
        assert not page.is_visible("#cut-in")
        assert sup.wait(60) == 0, sup.stderr
        assert page.errors == []
    finally:
        page.context.browser.close()
        ann.proc.terminate()
        ann.wait(30)
    assert banner == "sup is cutting in"
    assert during <= before - 10 and after >= before - 3
