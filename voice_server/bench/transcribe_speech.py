"""Speech for the capacity phase of ``bench transcribe``: a distinct talk burst per talker.

Each burst is ``seconds`` of 48 kHz mono audio encoded as 20 ms Opus packets at 24 kbps (what
the headset client sends), padded with silence or cut to length. No two bursts of a run share
their words: a Vosk recognizer that has decoded some audio decodes the same audio again far
more cheaply (it keeps the part of the decoding graph it composed), so replaying one clip to
every talker would flatter the figure.

Two sources:

- :class:`SyntheticKorean` (default): sentences built from templates (places, things, counts:
  the kind of thing field staff say), never the same sentence twice in a run, spoken by
  espeak-ng's Korean voice with 0.4 s pauses. The Korean model does not recognise this voice
  (character error ~100 %) and its beam search works harder on it than on real speech.
- :class:`Recordings`: the user's own files (``--capacity-speech DIR``: any format FFmpeg reads),
  taken in name order and cycled; real speech in the model's language gives the figure that
  holds for a deployment. With fewer files than bursts, content repeats and the figure flatters.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import av

__all__ = ["Recordings", "SyntheticKorean", "korean_sentences", "opus_packets", "pcm48"]

RATE = 48000
FRAME = 960  # 20 ms
PAUSE_SECONDS = 0.4

_PLACES = [
    "동쪽 문", "서쪽 출구", "이층 복도", "지하 주차장", "강당", "삼번 텐트", "정문", "지하 창고",
    "북쪽 다리", "사무실", "식당", "옥상", "보건소", "체육관", "남쪽 도로", "시청 앞",
]  # fmt: skip
_THINGS = [
    "물", "담요", "의사", "구급차", "전기", "무전기 배터리", "도시락", "자원봉사자", "휠체어",
    "손전등", "우산", "약", "모래주머니", "발전기", "간호사", "트럭",
]  # fmt: skip
_COUNTS = ["한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열"]
_TEMPLATES = [
    "{place}에 {thing}{i} 필요합니다",
    "{place}에서 {thing} {count} 개를 가져와 주세요",
    "{count} 시에 {place}에서 만납시다",
    "{place} 쪽으로 {thing}{ul} 보내 주세요",
    "지금 {place}에 {count} 명이 기다리고 있습니다",
    "{thing}{i} {place}에 도착했습니다",
    "{place}에 {thing}{i} 부족합니다 확인 부탁드립니다",
    "{place}{eun} 통행이 금지되었습니다 {thing}{ul} 다른 길로 옮겨 주세요",
]


def _has_final(word: str) -> bool:
    last = word[-1]
    return "가" <= last <= "힣" and (ord(last) - 0xAC00) % 28 != 0


def korean_sentences(n: int, seed: int) -> list[str]:
    """``n`` distinct Korean sentences (seeded)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        thing, place = rng.choice(_THINGS), rng.choice(_PLACES)
        text = rng.choice(_TEMPLATES).format(
            place=place,
            thing=thing,
            count=rng.choice(_COUNTS),
            i="이" if _has_final(thing) else "가",
            ul="을" if _has_final(thing) else "를",
            eun="은" if _has_final(place) else "는",
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def pcm48(path: Path) -> bytes:
    """Any audio file as 16-bit mono PCM at 48 kHz."""
    out = bytearray()
    res = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for r in res.resample(frame):
                out += bytes(r.planes[0])[: r.samples * 2]
    for r in res.resample(None):
        out += bytes(r.planes[0])[: r.samples * 2]
    return bytes(out)


def opus_packets(pcm: bytes, bitrate: int = 24000) -> list[bytes]:
    """48 kHz mono PCM as 20 ms Opus packets (the last frame padded with silence)."""
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = RATE
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = bitrate
    step = FRAME * 2
    if len(pcm) % step:
        pcm += b"\0" * (step - len(pcm) % step)
    out: list[bytes] = []
    for i in range(0, len(pcm), step):
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME)
        frame.planes[0].update(pcm[i : i + step])
        frame.sample_rate = RATE
        frame.pts = i // 2
        out += [bytes(p) for p in enc.encode(frame)]
    out += [bytes(p) for p in enc.encode(None)]
    return out


def _fit(pcm: bytes, seconds: float) -> bytes:
    size = int(seconds * RATE) * 2
    return pcm[:size] if len(pcm) >= size else pcm + b"\0" * (size - len(pcm))


class SyntheticKorean:
    """Distinct espeak-ng Korean bursts, ``seconds`` long each."""

    description = "espeak-ng Korean, template sentences, a new one for every burst"

    def __init__(self, work: Path, seconds: float, seed: int = 1) -> None:
        if shutil.which("espeak-ng") is None:
            raise SystemExit("bench transcribe: espeak-ng is needed (or --capacity-speech DIR)")
        self.work = work
        self.seconds = seconds
        self._sentences = iter(korean_sentences(2000, seed))
        self._n = 0

    def _sentence_pcm(self) -> bytes:
        text = next(self._sentences)
        self._n += 1
        wav = self.work / f"sentence-{self._n}.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(wav), text], check=True)
        try:
            return pcm48(wav)
        finally:
            wav.unlink()

    def burst(self) -> list[bytes]:
        pcm = bytearray()
        pause = b"\0\0" * int(RATE * PAUSE_SECONDS)
        while len(pcm) < self.seconds * RATE * 2:
            pcm += self._sentence_pcm() + pause
        return opus_packets(_fit(bytes(pcm), self.seconds))


class Recordings:
    """The user's recordings, in name order, cycled; ``seconds`` per burst."""

    def __init__(self, folder: Path, seconds: float) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.is_file())
        if not self.files:
            raise SystemExit(f"bench transcribe: no audio files in {folder}")
        self.description = f"recordings from {folder} ({len(self.files)} files)"
        self.seconds = seconds
        self._next = 0

    def burst(self) -> list[bytes]:
        pcm = bytearray()
        while len(pcm) < self.seconds * RATE * 2:
            pcm += pcm48(self.files[self._next % len(self.files)])
            pcm += b"\0\0" * int(RATE * PAUSE_SECONDS)
            self._next += 1
        return opus_packets(_fit(bytes(pcm), self.seconds))
