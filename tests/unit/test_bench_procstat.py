"""Behaviour of the /proc process sampler used by the benchmarks."""

from __future__ import annotations

import mmap
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from voice_server.bench import procstat
from voice_server.bench.procstat import CpuMeter

BUSY_CHILD = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end:\n    pass\n"
IDLE_CHILD = "import time\ntime.sleep(30)\n"


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


@pytest.fixture
def busy_child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", BUSY_CHILD])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def idle_child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", IDLE_CHILD])
    time.sleep(0.3)  # let the interpreter start up before measuring
    yield proc
    proc.kill()
    proc.wait()


def _rusage_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_busy_self_is_measured_as_the_kernel_counts_it() -> None:
    # The machine may be shared and busy: how much of a core the loop gets is not ours to
    # assert, only that the meter reports what the kernel counted, and never more than a core.
    before = _rusage_cpu()
    with CpuMeter() as meter:
        _burn(0.3)
    spent = _rusage_cpu() - before
    reading = meter.reading
    assert reading is not None
    assert reading.wall_seconds >= 0.3
    assert reading.cpu_seconds == pytest.approx(spent, abs=5 / procstat.CLK_TCK + 0.01)
    assert 0.0 < reading.cores <= 1.2
    assert reading.cpu_seconds == pytest.approx(reading.user_seconds + reading.system_seconds)


def test_sleeping_self_uses_almost_no_cpu() -> None:
    meter = CpuMeter()
    meter.start()
    time.sleep(0.3)
    reading = meter.stop()
    assert reading.cores < 0.1
    assert not meter.running


def test_busy_child_is_measured_from_proc(busy_child: subprocess.Popen[bytes]) -> None:
    meter = CpuMeter(busy_child.pid)
    meter.start()
    deadline = time.monotonic() + 60  # on a busy machine the child may wait for a core
    while sum(procstat.read_cpu_times(busy_child.pid)) < 0.2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.2)
    reading = meter.stop()
    assert reading.pid == busy_child.pid
    assert reading.cpu_seconds > 0.05
    assert 0.0 < reading.cores <= 1.2


def test_idle_child_uses_almost_no_cpu(idle_child: subprocess.Popen[bytes]) -> None:
    meter = CpuMeter(idle_child.pid)
    meter.start()
    time.sleep(0.5)
    assert meter.stop().cores < 0.1


def test_self_cpu_from_proc_agrees_with_getrusage() -> None:
    _burn(0.2)
    user, system = procstat.read_cpu_times()
    proc_cpu = user + system
    rusage = procstat.sample()
    # /proc has 1/CLK_TCK resolution; allow a few ticks.
    assert proc_cpu == pytest.approx(rusage.cpu_seconds, abs=5 / procstat.CLK_TCK)


def test_sample_reports_plausible_rss_threads_and_fds() -> None:
    s = procstat.sample()
    assert s.pid == os.getpid()
    assert 1e6 < s.rss_bytes < 4e9
    assert s.threads >= 1
    assert s.fds >= 3
    d = s.as_dict()
    assert set(d) >= {"cpu_seconds", "rss_mb", "threads", "fds"}


def test_opening_files_raises_the_fd_count() -> None:
    before = procstat.count_fds()
    fds = [os.open(os.devnull, os.O_RDONLY) for _ in range(5)]
    try:
        assert procstat.count_fds() == before + 5
    finally:
        for fd in fds:
            os.close(fd)
    assert procstat.count_fds() == before


def test_starting_a_thread_raises_the_thread_count() -> None:
    before = procstat.read_threads()
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert procstat.read_threads() == before + 1
    finally:
        stop.set()
        t.join()


def test_rss_grows_when_memory_is_touched() -> None:
    # fresh anonymous pages (not memory the allocator already holds from earlier tests)
    before = procstat.read_rss_bytes()
    block = mmap.mmap(-1, 64 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    assert procstat.read_rss_bytes() > before + 32 * 1024 * 1024
    block.close()


def test_exited_process_raises_process_lookup_error() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(ProcessLookupError):
        procstat.read_cpu_times(proc.pid)
    with pytest.raises(ProcessLookupError):
        procstat.sample(proc.pid)


def test_peek_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError):
        CpuMeter().peek()
