"""Process resource sampling from ``/proc`` (Linux only).

What is measured and how:

- **CPU time**: ``utime + stime`` (fields 14 and 15) of ``/proc/<pid>/stat``, in clock ticks,
  divided by ``os.sysconf("SC_CLK_TCK")`` (100 on this machine, so a resolution of 10 ms).
  Both fields cover every thread of the process (decoder and executor threads included) but not
  its children. For the *current* process, ``resource.getrusage(RUSAGE_SELF)`` gives the same
  quantity with microsecond resolution and is used instead.
- **RSS**: ``resident`` pages (field 2) of ``/proc/<pid>/statm`` times the page size.
- **Threads**: ``num_threads`` (field 20) of ``/proc/<pid>/stat``.
- **Open fds**: number of entries of ``/proc/<pid>/fd`` (sockets included).

``CpuMeter`` takes a snapshot at ``start()`` and one at ``stop()`` and reports CPU seconds and
cores used (CPU seconds ÷ wall seconds, measured with ``time.monotonic``) over that interval.
A process that has exited raises ``ProcessLookupError``.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass
from types import TracebackType

__all__ = [
    "CLK_TCK",
    "PAGE_SIZE",
    "CpuMeter",
    "CpuReading",
    "ProcSample",
    "count_fds",
    "read_cpu_times",
    "read_machine_busy_seconds",
    "read_rss_bytes",
    "read_threads",
    "sample",
]

CLK_TCK: int = os.sysconf("SC_CLK_TCK")
PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")


def _proc(pid: int, name: str) -> str:
    return f"/proc/{pid}/{name}"


def _read_text(path: str, pid: int) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise ProcessLookupError(pid) from exc


def _stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/<pid>/stat`` after the command name.

    The command name (field 2) is in parentheses and may itself contain spaces and parentheses,
    so split after the *last* ``)``. Index 0 of the result is field 3 (state).
    """
    text = _read_text(_proc(pid, "stat"), pid)
    return text[text.rindex(")") + 2 :].split()


def _self_pid(pid: int | None) -> int:
    return os.getpid() if pid is None else pid


def read_cpu_times(pid: int | None = None) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` (all threads), from ``/proc/<pid>/stat``."""
    fields = _stat_fields(_self_pid(pid))
    # field 14 = utime, 15 = stime; fields[0] is field 3.
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def read_machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine spent busy (every CPU) since boot.

    From the aggregate ``cpu`` line of ``/proc/stat``: user + nice + system + irq + softirq +
    steal, in clock ticks (idle and iowait excluded; guest time is already inside user).
    """
    with open("/proc/stat", encoding="ascii") as f:
        fields = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def read_threads(pid: int | None = None) -> int:
    """Number of threads of ``pid`` (field 20 of ``/proc/<pid>/stat``)."""
    return int(_stat_fields(_self_pid(pid))[17])


def read_rss_bytes(pid: int | None = None) -> int:
    """Resident set size of ``pid`` in bytes (``/proc/<pid>/statm`` resident pages)."""
    p = _self_pid(pid)
    return int(_read_text(_proc(p, "statm"), p).split()[1]) * PAGE_SIZE


def count_fds(pid: int | None = None) -> int:
    """Number of open file descriptors of ``pid`` (entries of ``/proc/<pid>/fd``)."""
    p = _self_pid(pid)
    try:
        return len(os.listdir(_proc(p, "fd")))
    except FileNotFoundError as exc:
        raise ProcessLookupError(p) from exc


def _self_cpu_times() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


@dataclass(frozen=True, slots=True)
class ProcSample:
    """One snapshot of a process. ``wall`` is ``time.monotonic()`` at the snapshot."""

    pid: int
    wall: float
    user_seconds: float
    system_seconds: float
    rss_bytes: int
    threads: int
    fds: int

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds

    def as_dict(self) -> dict[str, float | int]:
        return {
            "pid": self.pid,
            "cpu_seconds": self.cpu_seconds,
            "user_seconds": self.user_seconds,
            "system_seconds": self.system_seconds,
            "rss_mb": self.rss_bytes / 1e6,
            "threads": self.threads,
            "fds": self.fds,
        }


def sample(pid: int | None = None) -> ProcSample:
    """Snapshot CPU, RSS, threads and fds of ``pid`` (default: this process).

    For this process the CPU times come from ``getrusage`` (µs resolution); for another process
    from ``/proc/<pid>/stat`` (``1/CLK_TCK`` resolution).
    """
    p = _self_pid(pid)
    user, system = _self_cpu_times() if p == os.getpid() else read_cpu_times(p)
    return ProcSample(
        pid=p,
        wall=time.monotonic(),
        user_seconds=user,
        system_seconds=system,
        rss_bytes=read_rss_bytes(p),
        threads=read_threads(p),
        fds=count_fds(p),
    )


@dataclass(frozen=True, slots=True)
class CpuReading:
    """CPU used by a process between two snapshots."""

    pid: int
    cpu_seconds: float
    user_seconds: float
    system_seconds: float
    wall_seconds: float

    @property
    def cores(self) -> float:
        """Average number of cores busy: CPU seconds ÷ wall seconds."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "pid": self.pid,
            "cpu_seconds": self.cpu_seconds,
            "user_seconds": self.user_seconds,
            "system_seconds": self.system_seconds,
            "wall_seconds": self.wall_seconds,
            "cores": self.cores,
        }


class CpuMeter:
    """Measure the CPU a process uses over a wall-clock interval.

    ``CpuMeter()`` measures this process (``getrusage``, µs resolution); ``CpuMeter(pid)`` a child
    or any other readable process (``/proc/<pid>/stat``, ``1/CLK_TCK`` resolution, so measure
    over seconds, not milliseconds). Usable as a context manager; ``reading`` holds the last
    result.
    """

    __slots__ = ("_pid", "_self", "_start_cpu", "_start_wall", "reading")

    def __init__(self, pid: int | None = None) -> None:
        self._pid = _self_pid(pid)
        self._self = self._pid == os.getpid()
        self._start_cpu: tuple[float, float] | None = None
        self._start_wall = 0.0
        self.reading: CpuReading | None = None

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def running(self) -> bool:
        return self._start_cpu is not None

    def _cpu(self) -> tuple[float, float]:
        return _self_cpu_times() if self._self else read_cpu_times(self._pid)

    def start(self) -> None:
        """Take the start snapshot (restarts a running meter)."""
        self._start_cpu = self._cpu()
        self._start_wall = time.monotonic()

    def peek(self) -> CpuReading:
        """CPU used since ``start()`` without stopping the meter."""
        if self._start_cpu is None:
            raise RuntimeError("CpuMeter.peek() before start()")
        user, system = self._cpu()
        wall = time.monotonic() - self._start_wall
        du = user - self._start_cpu[0]
        ds = system - self._start_cpu[1]
        return CpuReading(self._pid, du + ds, du, ds, wall)

    def stop(self) -> CpuReading:
        """Take the stop snapshot and return the CPU used since ``start()``."""
        reading = self.peek()
        self._start_cpu = None
        self.reading = reading
        return reading

    def __enter__(self) -> CpuMeter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._start_cpu is not None:
            self.stop()
