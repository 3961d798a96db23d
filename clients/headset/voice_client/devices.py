"""Real audio devices for the headset client, through PortAudio (the ``sounddevice`` package;
Debian's ``libportaudio2``). Under PulseAudio or PipeWire, PortAudio's ALSA ``pulse``/``default``
devices reach the sound server (Debian's ``libasound2-plugins``); ``PULSE_SOURCE`` and
``PULSE_SINK`` pick its source and sink.

- :func:`list_devices` / :func:`pick`: find devices by index or by part of their name.
- :class:`Capture`: 20 ms blocks from an input device into a bounded queue (drop oldest).
- :class:`Playout`: the slots we hear, one FIFO each, mixed by the output callback. Each FIFO
  starts playing once it holds ``prebuffer_ms`` (jitter absorption) and is cut back to it when it
  grows past ``max_ms`` (latency never creeps up); underruns play silence.

PortAudio calls the callbacks on its own thread: they only touch bytes under a lock or hand
blocks to the event loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from voice_client.gate import OnsetDetector

__all__ = ["AudioDeviceError", "Capture", "DeviceInfo", "Playout", "list_devices", "pick"]

RATE = 48000
FRAME = 960  # 20 ms
_BYTES_PER_MS = RATE * 2 // 1000


class AudioDeviceError(Exception):
    """No usable audio device; the message is one line for the user."""


def _sounddevice() -> ModuleType:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio missing: sounddevice raises OSError at import
        raise AudioDeviceError(
            f"no audio devices: {exc} (install Debian's libportaudio2)"
        ) from None
    except ImportError:
        raise AudioDeviceError("no audio devices: the 'sounddevice' package is missing") from None
    module: ModuleType = sounddevice
    return module


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    index: int
    name: str
    inputs: int
    outputs: int
    default_input: bool
    default_output: bool

    def line(self) -> str:
        marks = ("<" if self.default_input else " ") + (">" if self.default_output else " ")
        return f"{marks} {self.index:3d}  {self.name}  (in {self.inputs}, out {self.outputs})"


def list_devices() -> list[DeviceInfo]:
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_in, default_out = (int(x) for x in sd.default.device)
    except Exception as exc:  # PortAudioError and friends
        raise AudioDeviceError(f"no audio devices: {exc}") from None
    return [
        DeviceInfo(
            index=int(d["index"]),
            name=str(d["name"]),
            inputs=int(d["max_input_channels"]),
            outputs=int(d["max_output_channels"]),
            default_input=int(d["index"]) == default_in,
            default_output=int(d["index"]) == default_out,
        )
        for d in devices
    ]


def pick(spec: str, kind: str, devices: list[DeviceInfo] | None = None) -> DeviceInfo:
    """The device for ``--input``/``--output`` ``spec``: 'default', an index or part of a name."""
    devices = list_devices() if devices is None else devices
    usable = [d for d in devices if (d.inputs if kind == "input" else d.outputs) > 0]
    if not usable:
        raise AudioDeviceError(
            f"no audio {kind} device found (no sound card, and no PulseAudio/PipeWire running?)"
        )
    if spec == "default":
        for d in usable:
            if d.default_input if kind == "input" else d.default_output:
                return d
        return usable[0]
    if spec.isdigit():
        for d in usable:
            if d.index == int(spec):
                return d
        raise AudioDeviceError(f"no audio {kind} device with index {spec} (see --list-devices)")
    matches = [d for d in usable if spec.lower() in d.name.lower()]
    if not matches:
        raise AudioDeviceError(f"no audio {kind} device named like {spec!r} (see --list-devices)")
    return matches[0]


class Capture:
    """An input stream: 20 ms s16 mono blocks delivered to an asyncio queue."""

    def __init__(self, device: DeviceInfo, *, queue_frames: int = 25) -> None:
        self.device = device
        self.dropped = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(queue_frames)
        self._loop = asyncio.get_running_loop()
        self._stream: Any = None

    def start(self) -> None:
        sd = _sounddevice()
        try:
            self._stream = sd.RawInputStream(
                samplerate=RATE,
                blocksize=FRAME,
                device=self.device.index,
                channels=1,
                dtype="int16",
                latency="low",
                callback=self._callback,
            )
            self._stream.start()
        except Exception as exc:
            raise AudioDeviceError(f"cannot open input {self.device.name!r}: {exc}") from None

    def _callback(self, indata: Any, frames: int, t: Any, status: Any) -> None:
        data = bytes(indata)
        with contextlib.suppress(RuntimeError):  # the loop is closing
            self._loop.call_soon_threadsafe(self._put, data)

    def _put(self, data: bytes) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(data)

    async def read(self) -> bytes:
        return await self._queue.get()

    def stop(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()
            self._stream = None


class _Fifo:
    __slots__ = ("buf", "playing")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.playing = False


class Playout:
    """Mixes the slots we hear into one output stream (see the module docstring)."""

    def __init__(
        self,
        device: DeviceInfo | None,
        *,
        prebuffer_ms: int = 20,
        max_ms: int = 120,
        block: int = 480,
        on_onset: Callable[[float], None] | None = None,
    ) -> None:
        self.device = device
        self.prebuffer = prebuffer_ms * _BYTES_PER_MS
        self.limit = max(max_ms * _BYTES_PER_MS, self.prebuffer + 2 * FRAME)
        self.block = block
        self.dropped_bytes = 0
        self.underruns = 0
        self._fifos: dict[str, _Fifo] = {}
        self._lock = threading.Lock()
        self._on_onset = on_onset
        self._onsets = OnsetDetector() if on_onset is not None else None
        self._stream: Any = None
        self.latency = 0.0

    def start(self) -> None:
        if self.device is None:
            return
        sd = _sounddevice()
        try:
            self._stream = sd.RawOutputStream(
                samplerate=RATE,
                blocksize=self.block,
                device=self.device.index,
                channels=1,
                dtype="int16",
                latency="low",
                callback=self._callback,
            )
            self._stream.start()
            self.latency = float(self._stream.latency)
        except Exception as exc:
            raise AudioDeviceError(f"cannot open output {self.device.name!r}: {exc}") from None

    def push(self, mid: str, pcm: bytes) -> None:
        """Decoded audio of one slot (event loop thread)."""
        with self._lock:
            fifo = self._fifos.setdefault(mid, _Fifo())
            fifo.buf += pcm
            if len(fifo.buf) > self.limit:
                cut = len(fifo.buf) - self.prebuffer
                cut -= cut % 2
                del fifo.buf[:cut]
                self.dropped_bytes += cut

    def render(self, samples: int) -> bytes:
        """The next ``samples`` of the mix (output thread)."""
        need = 2 * samples
        parts: list[bytes] = []
        with self._lock:
            for fifo in self._fifos.values():
                if not fifo.playing:
                    if len(fifo.buf) < self.prebuffer:
                        continue
                    fifo.playing = True
                if len(fifo.buf) < need:
                    self.underruns += 1
                    chunk = bytes(fifo.buf) + bytes(need - len(fifo.buf))
                    fifo.buf.clear()
                    fifo.playing = False
                else:
                    chunk = bytes(fifo.buf[:need])
                    del fifo.buf[:need]
                parts.append(chunk)
        if not parts:
            return bytes(need)
        if len(parts) == 1:
            return parts[0]
        acc = array("h", parts[0])
        for part in parts[1:]:
            other = array("h", part)
            for i, x in enumerate(other):
                v = acc[i] + x
                acc[i] = 32767 if v > 32767 else -32768 if v < -32768 else v
        return acc.tobytes()

    def _callback(self, outdata: Any, frames: int, t: Any, status: Any) -> None:
        data = self.render(frames)
        outdata[:] = data
        if self._onsets is not None and self._on_onset is not None:
            at = self._onsets.scan(array("h", data))
            if at >= 0:
                # when that sample reaches the output: PortAudio's DAC time, on the wall clock
                ahead = max(0.0, float(t.outputBufferDacTime) - float(t.currentTime))
                self._on_onset(time.time() + ahead + at / RATE)

    def stop(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.stop()
                self._stream.close()
            self._stream = None
