"""Benchmarks behind ``voice-server bench ...``.

- ``procstat``: CPU, RSS, threads and fds of a process from ``/proc``; ``CpuMeter``.
- ``stats``: percentiles, summaries and ``LatencyHistogram`` (also used in the server hot path).
- ``relay_baseline``: the aiortc ``MediaRelay`` relay baseline (``run_relay_baseline``), whose
  relay runs as ``relay_server`` in its own process; ``tone`` and ``loopback`` are its helpers.
"""
