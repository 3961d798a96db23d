"""The client's WebRTC side: a standard aiortc peer answering the server's offer.

The server makes the offer: mid "0" is recvonly on its side (our microphone), mids "1".."N" are
sendonly slots (what we hear), BUNDLE over one ICE-lite host candidate. After
``setRemoteDescription`` aiortc has one transceiver per mid, all ``recvonly``; we put the
microphone on the transceiver whose mid is "0" (``sender.replaceTrack``, synchronous in aiortc)
and make it ``sendonly``, or the answer would mark that m-line ``inactive``.

:class:`MicTrack` plays PCM48 in real time (once or looped, then silence). :class:`SlotRecorder`
drains one slot track (always: aiortc's track queue is unbounded) and, when recording, places
each decoded frame into a :class:`~voice_client.wavio.Mix` by its RTP time, anchored at the
arrival of the slot's first frame relative to the join.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from array import array
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from voice_client.gate import Gate, OnsetDetector
from voice_client.netreport import Counters
from voice_client.turntls import relay_selected
from voice_client.wavio import FRAME_BYTES, FRAME_SAMPLES, SAMPLE_RATE, Mix, frames_20ms

__all__ = [
    "MIC_MID",
    "ClientPeer",
    "DeviceMicTrack",
    "MicTrack",
    "PeerMic",
    "SlotRecorder",
    "pcm_frame",
]

log = logging.getLogger(__name__)

MIC_MID = "0"


class _Reader(Protocol):
    async def read(self) -> bytes: ...


_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
_SILENCE = bytes(FRAME_BYTES)
# A slot's RTP time and its arrival time may disagree by jitter; beyond this, trust arrival.
_MAX_DRIFT_SAMPLES = SAMPLE_RATE  # 1 s


class MicTrack(MediaStreamTrack):
    """An audio track that plays PCM48 mono (once, or looped) in real time, then silence."""

    kind = "audio"

    def __init__(self, pcm: bytes = b"", *, loop: bool = False, gate: Gate | None = None) -> None:
        super().__init__()
        self._gate = gate
        self._frames = list(frames_20ms(pcm))
        self._repeat = loop and bool(self._frames)  # not _loop: pyee uses that name
        self._index = 0
        self._pts = 0
        self._start: float | None = None
        #: frames of the file sent so far (counting repeats), for tests and logs
        self.played = 0

    @property
    def finished(self) -> bool:
        """True once the file has been played (never, when looping)."""
        return not self._repeat and self._index >= len(self._frames)

    def next_pcm(self) -> bytes:
        """The next 20 ms of audio (no pacing)."""
        if self._index >= len(self._frames):
            if not self._repeat:
                return _SILENCE
            self._index = 0
        chunk = self._frames[self._index]
        self._index += 1
        self.played += 1
        return chunk

    async def recv(self) -> av.AudioFrame:
        """The next 20 ms to send, in real time. With a gate, silent stretches are skipped:
        recv() waits until the gate opens (the pts jumps over the gap)."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if self._start is None:
                self._start = time.monotonic()
            else:
                self._pts += FRAME_SAMPLES
                delay = self._start + self._pts / SAMPLE_RATE - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            pcm: bytes | None = self.next_pcm()
            if self._gate is not None and pcm is not None:
                pcm = self._gate.process(pcm)
            if pcm is not None:
                return pcm_frame(pcm, self._pts)


class DeviceMicTrack(MediaStreamTrack):
    """The microphone of an audio device (a :class:`~voice_client.devices.Capture`), gated.

    Paced by the device: each 20 ms block captured is one frame; blocks the gate holds back
    are not sent (the pts jumps over them)."""

    kind = "audio"

    def __init__(self, capture: _Reader, gate: Gate) -> None:
        super().__init__()
        self._capture = capture
        self._gate = gate
        self._pts = -FRAME_SAMPLES

    async def recv(self) -> av.AudioFrame:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            block = await self._capture.read()
            self._pts += FRAME_SAMPLES
            out = self._gate.process(block)
            if out is not None:
                return pcm_frame(out, self._pts)


class PeerMic(MediaStreamTrack):
    """One peer connection's view of the microphone track.

    aiortc stops a sender's track when its peer connection closes, and the client makes a new
    peer connection for every new offer (a new session after a reconnect: the server restarted,
    or the grace period ran out): that one must still have a live microphone. Each peer
    connection sends its own view; the microphone itself is never stopped by aiortc."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        return cast(av.AudioFrame, await self.source.recv())  # an audio track's frame


def pcm_frame(pcm: bytes, pts: int) -> av.AudioFrame:
    """A 20 ms PCM48 mono s16 frame at ``pts`` (in samples)."""
    frame = av.AudioFrame(format="s16", layout="mono", samples=len(pcm) // 2)
    frame.planes[0].update(pcm)
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = _TIME_BASE
    return frame


def scaled(pcm: bytes, gain: float) -> bytes:
    """s16 PCM times ``gain`` (< 1: no clipping to handle)."""
    samples = array("h", pcm)
    for i, x in enumerate(samples):
        samples[i] = int(x * gain)
    return samples.tobytes()


class SlotRecorder:
    """Drains one slot track; with a :class:`Mix`, records it at its place in time.

    ``t0`` is the monotonic time of the join (sample 0 of the recording).
    """

    def __init__(
        self,
        mid: str,
        t0: float,
        mix: Mix | None = None,
        *,
        sink: Callable[[str, bytes], None] | None = None,
        on_onset: Callable[[str, float], None] | None = None,
        gain: Callable[[str], float] | None = None,
    ) -> None:
        self.mid = mid
        self._gain = gain  # the slot's gain now (1.0, or lower while another slot ducks it)
        self.frames = 0
        self._t0 = t0
        self._mix = mix
        self._sink = sink  # the audio device's playout, when there is one
        self._on_onset = on_onset
        self._onsets = OnsetDetector() if on_onset is not None else None
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self._anchor: tuple[int, int] | None = None  # (sample position, pts) of the anchor
        self._next_pos = 0

    def position(self, pts: int | None, arrival: float) -> int:
        """Where a frame with RTP time ``pts`` that arrived at ``arrival`` goes in the mix."""
        by_arrival = max(0, round((arrival - self._t0) * SAMPLE_RATE))
        if pts is None or self._anchor is None:
            if pts is not None:
                self._anchor = (by_arrival, pts)
            return by_arrival
        pos = self._anchor[0] + (pts - self._anchor[1])
        if abs(pos - by_arrival) > _MAX_DRIFT_SAMPLES or pos < self._next_pos - FRAME_SAMPLES:
            self._anchor = (by_arrival, pts)  # the stream's clock jumped: re-anchor
            return by_arrival
        return pos

    def add(self, frame: av.AudioFrame, arrival: float) -> None:
        self.frames += 1
        if self._mix is None and self._sink is None and self._onsets is None:
            return
        pcm = bytearray()
        for mono in self._resampler.resample(frame):
            pcm += bytes(mono.planes[0])[: mono.samples * 2]
        data = bytes(pcm)
        if self._gain is not None:
            gain = self._gain(self.mid)
            if gain != 1.0:
                data = scaled(data, gain)
        if self._sink is not None:
            self._sink(self.mid, data)
        if self._onsets is not None and self._on_onset is not None:
            at = self._onsets.scan(array("h", data))
            if at >= 0:  # handed to playout now: the wall-clock time of that sample
                self._on_onset(self.mid, time.time() + at / SAMPLE_RATE)
        if self._mix is None:
            return
        pos = self.position(frame.pts, arrival)
        self._mix.add(pos, data)
        self._next_pos = pos + len(data) // 2

    async def run(self, track: MediaStreamTrack) -> None:
        """Consume ``track`` until it ends."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.add(frame, time.monotonic())


class ClientPeer:
    """One RTCPeerConnection that answers the server's offer.

    ``on_slot(mid, track)`` is called for every slot track the offer creates (mids other than
    the microphone's).
    """

    def __init__(
        self,
        mic: MediaStreamTrack,
        on_slot: Callable[[str, MediaStreamTrack], None],
        ice_servers: Sequence[dict[str, Any]] = (),
    ) -> None:
        # Only the TURN relay the server names (joined.ice_servers), never a public STUN
        # server (aiortc's default when none is given is Google's: an empty list, not None).
        servers = [
            RTCIceServer(urls=list(s["urls"]), username=s["username"], credential=s["credential"])
            for s in ice_servers
        ]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self._mic = PeerMic(mic)  # closing this connection stops the view, not the microphone
        self._on_slot = on_slot
        self._slots_seen: set[str] = set()

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    async def answer(self, offer_sdp: str) -> str:
        """Apply the server's offer and return our SDP answer (after ICE gathering). A
        renegotiation offer (more slot m-lines, same ICE and DTLS) is applied the same way to
        this live connection: audio already flowing goes on, new slots get their recorders."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        mic_transceiver = None
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == MIC_MID and transceiver.kind == "audio":
                mic_transceiver = transceiver
            elif transceiver.receiver.track is not None and transceiver.mid is not None:
                if transceiver.mid not in self._slots_seen:
                    self._slots_seen.add(transceiver.mid)
                    self._on_slot(transceiver.mid, transceiver.receiver.track)
        if mic_transceiver is None:
            raise ValueError("the server's offer has no audio m-line with mid 0")
        mic_transceiver.sender.replaceTrack(self._mic)
        mic_transceiver.direction = "sendonly"
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return str(self.pc.localDescription.sdp)

    async def counters(self) -> Counters:
        """What aiortc counts now, for the ``stats`` report (voice_client.netreport)."""
        stats = await self.pc.getStats()
        received = lost = 0
        jitter: float | None = None
        rtt: float | None = None
        for s in stats.values():
            if s.type == "inbound-rtp" and s.kind == "audio":
                received += s.packetsReceived
                lost += max(0, s.packetsLost)
                seconds = s.jitter / SAMPLE_RATE  # RTP timestamp units (Opus: 48 kHz)
                jitter = seconds if jitter is None else max(jitter, seconds)
            elif s.type == "remote-inbound-rtp" and s.kind == "audio":
                rtt = s.roundTripTime if rtt is None else max(rtt, s.roundTripTime)
        return Counters(relay_selected(self.pc), received, lost, jitter, rtt)

    async def close(self) -> None:
        await self.pc.close()
