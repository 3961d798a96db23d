"""``voice-server loadtest``: many simulated participants in many channels against one server.

- ``plan.py``: channels, talkers, join order and schedule, worker shares [pure];
- ``worker.py``: a generator process driving its share (``voice_server.sim`` participants, one
  pacer, one epoll, uvloop);
- ``runner.py``: the coordinator (server, workers, phases, ``/proc`` and ``/metrics``);
- ``target.py``: the server under test, started here or already running;
- ``report.py`` [pure], ``soak.py`` [pure], ``summary.py``: figures, trends, the printout;
- ``cli.py``: the command line.
"""
