"""A private PulseAudio server for the device test and ``bench latency``: null sinks only (no
sound card needed), its socket in a temporary directory, owned and stopped by the caller."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["missing", "pulse_server"]


def missing() -> str | None:
    for tool in ("pulseaudio", "pactl", "paplay", "parec"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (Debian packages pulseaudio, pulseaudio-utils)"
    return None


@contextlib.contextmanager
def pulse_server(workdir: Path, sinks: tuple[str, ...]) -> Iterator[dict[str, str]]:
    """Start PulseAudio with one null sink per name; yield the environment that reaches it."""
    workdir.mkdir(parents=True, exist_ok=True)
    socket_path = workdir / "native"
    env = {
        **os.environ,
        "HOME": str(workdir),
        "XDG_RUNTIME_DIR": str(workdir),
        "PULSE_RUNTIME_PATH": str(workdir),
        "PULSE_SERVER": f"unix:{socket_path}",
    }
    cmd = [
        "pulseaudio",
        "-n",
        "--daemonize=no",
        "--exit-idle-time=-1",
        "--disable-shm=yes",
        "--use-pid-file=no",
        "--log-target=stderr",
        "-L",
        f"module-native-protocol-unix auth-anonymous=1 socket={socket_path}",
    ]
    for name in sinks:
        cmd += ["-L", f"module-null-sink sink_name={name} rate=48000 channels=1"]
    log = (workdir / "pulseaudio.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "pulseaudio did not start: " + (workdir / "pulseaudio.log").read_text()
                )
            time.sleep(0.1)
        yield {k: env[k] for k in ("HOME", "XDG_RUNTIME_DIR", "PULSE_RUNTIME_PATH", "PULSE_SERVER")}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
