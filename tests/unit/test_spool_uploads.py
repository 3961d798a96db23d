"""The spool's uploads queue (logic, a fake store): bounded with counted drops, a failed burst
tried again about every second until done, and the work done on its own thread."""

from __future__ import annotations

import threading

from voice_server.calllog.burst import BurstMeta
from voice_server.transcribe.uploads import Upload, Uploads


def meta(n: int) -> BurstMeta:
    return BurstMeta(f"{1_780_000_000_000 + n:013d}00000{n}", "ops", "sato", "Sato", "", 0)


def test_a_failed_burst_is_retried_until_done_and_a_full_queue_drops_counted() -> None:
    failing = {meta(1).id}
    seen: list[str] = []

    def handle(item: Upload) -> bool:
        seen.append(item.meta.id)
        return item.meta.id not in failing

    uploads = Uploads(handle, capacity=2, retry_s=1.0)
    assert uploads.submit(meta(1), fsynced=0.0) and uploads.submit(meta(2), fsynced=0.0)
    assert not uploads.submit(meta(3)) and uploads.drops == 1  # full
    assert uploads.step(now=100.0) == 1  # 2 done, 1 waits
    assert seen == [meta(1).id, meta(2).id]
    assert uploads.step(now=100.5) == 1 and len(seen) == 2  # not due yet
    failing.clear()
    assert uploads.step(now=10_000.0) == 0 and seen[-1] == meta(1).id
    assert uploads.retries == 1
    assert uploads.submit(meta(3))  # room again


def test_the_work_runs_on_its_own_thread_and_a_raising_handler_is_retried() -> None:
    calls: list[str] = []
    done = threading.Event()

    def handle(item: Upload) -> bool:
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise OSError("database away")
        done.set()
        return True

    uploads = Uploads(handle, retry_s=0.05)
    uploads.start()
    try:
        uploads.submit(meta(1))
        assert done.wait(30)
    finally:
        uploads.stop()
    assert calls == ["spool-uploads", "spool-uploads"] and uploads.waiting == 0
