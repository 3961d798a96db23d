"""Benchmarks behind ``voice-server bench ...``.

- ``procstat``: CPU, RSS, threads and fds of a process from ``/proc``; ``CpuMeter``.
- ``stats``: percentiles, summaries and ``LatencyHistogram`` (also used in the server hot path).
- ``forward``: ``bench forward`` (``run_forward_bench``): the real server in a child process
  (``serverproc``), simulated participants as the generator (``voice_server.sim``), ``/metrics``
  read back by ``prom``, kernel UDP drops by ``udpstat``, the machine's floor by ``floor``.
- ``relay_baseline``: the aiortc ``MediaRelay`` relay baseline (``run_relay_baseline``), whose
  relay runs as ``relay_server`` in its own process; ``tone`` and ``loopback`` are its helpers.
"""
