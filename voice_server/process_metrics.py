"""Process-level metrics of the server, read at scrape time (nothing runs per packet).

Always exposed:

- ``voice_asyncio_tasks``: tasks alive on the event loop (``asyncio.all_tasks()``); a task leak
  shows as a slope in a soak run;
- ``process_open_fds``, ``process_resident_memory_bytes``, ``process_cpu_seconds_total``,
  ``process_threads`` (the usual Prometheus process names, from ``/proc/self`` and
  ``getrusage``; omitted where ``/proc`` is missing);
- ``voice_gc_pause_seconds`` (histogram) and ``voice_gc_collections_total{generation}``: the
  garbage collector stops the event loop (voice included) while it runs; :class:`GcMonitor`
  times each collection through ``gc.callbacks`` (two clock reads per collection, nothing per
  packet).

With ``debug_objects`` (``VOICE_DEBUG_OBJECTS=1``, for load and leak tests only), also
``voice_debug_live_objects{type=…}``: after a full ``gc.collect()``, the number of live
instances of every class defined in ``voice_server`` (transports, routers, members, sessions,
connections, …), and ``voice_debug_census_seconds``, what that census cost. The census walks
the whole heap (tens of ms with a thousand participants) on the event loop, which is why it is
off by default.
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import threading
import time
from collections import Counter

from voice_server.histogram import LatencyHistogram
from voice_server.metrics import Family

__all__ = ["GC", "GcMonitor", "live_objects", "process_families"]

_PACKAGE = "voice_server."


def live_objects() -> Counter[str]:
    """Live instances of the package's own classes, keyed ``module.Class`` (after a collection).

    Only objects the garbage collector tracks are seen: instances of Python classes always are.
    """
    gc.collect()
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = cls.__dict__.get("__module__")  # a class attribute, not a descriptor
        if isinstance(module, str) and module.startswith(_PACKAGE):
            counts[f"{module[len(_PACKAGE) :]}.{cls.__qualname__}"] += 1
    return counts


class GcMonitor:
    """Times every garbage collection; :data:`GC` is the process's one (install is idempotent:
    the collector is process-wide, however many apps a test creates)."""

    def __init__(self) -> None:
        self.pauses = LatencyHistogram()
        self.collections = [0, 0, 0]
        self._started = 0

    def install(self) -> GcMonitor:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        elif self._started:
            self.pauses.observe_us((time.perf_counter_ns() - self._started) // 1000)
            self._started = 0
            generation = info.get("generation", 0)
            if 0 <= generation < 3:
                self.collections[generation] += 1

    def families(self) -> list[Family]:
        collections = Family("voice_gc_collections_total", "counter", "Garbage collections")
        for generation, count in enumerate(self.collections):
            collections.add(count, generation=str(generation))
        return [
            collections,
            self.pauses.family(
                "voice_gc_pause_seconds", "Time the garbage collector stopped the process"
            ),
        ]


GC = GcMonitor()


def _tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # no running loop (a scrape outside the server)
        return 0


def _fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def process_families(*, debug_objects: bool = False) -> list[Family]:
    """The families above, computed now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    fams = [
        Family("voice_asyncio_tasks", "gauge", "Tasks alive on the event loop").add(_tasks()),
        Family("process_threads", "gauge", "Threads of the server process").add(
            threading.active_count()
        ),
        Family("process_cpu_seconds_total", "counter", "User and system CPU seconds").add(
            usage.ru_utime + usage.ru_stime
        ),
    ]
    fds = _fds()
    if fds is not None:
        fams.append(Family("process_open_fds", "gauge", "Open file descriptors").add(fds))
    rss = _rss_bytes()
    if rss is not None:
        fams.append(Family("process_resident_memory_bytes", "gauge", "Resident set size").add(rss))
    if debug_objects:
        started = time.perf_counter()
        counts = live_objects()
        objects = Family(
            "voice_debug_live_objects", "gauge", "Live instances of the server's own classes"
        )
        for name, count in sorted(counts.items()):
            objects.add(count, type=name)
        fams.append(objects)
        fams.append(
            Family("voice_debug_census_seconds", "gauge", "Time the object census took").add(
                time.perf_counter() - started
            )
        )
    return fams
