"""The private PulseAudio server of the device tests (shared with ``bench latency``)."""

from voice_server.bench.pulse import missing, pulse_server

__all__ = ["missing", "pulse_server"]
