"""Ogg/Opus remuxing: pages with valid CRCs, tags carrying the burst, files that PyAV (FFmpeg)
plays, truncated files read up to their last page; RTP sequencing with loss filled."""

from __future__ import annotations

import io
from pathlib import Path

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.calllog.burst import BurstMeta, burst_id_of, clip_path, spool_name
from voice_server.calllog.ogg import (
    OggError,
    OggOpusWriter,
    build_page,
    crc32_ogg,
    read_ogg_opus,
    read_pages,
)
from voice_server.transcribe.packets import FILLER, Sequencer, opus_samples

META = BurstMeta("1780000000000abcdef", "shelter-a", "sato", "佐藤", "sess1", 1780000000000)


def encode_tone(seconds: float) -> list[bytes]:
    import math

    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = 48000
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = 24000
    packets: list[bytes] = []
    for i in range(int(seconds * 50)):
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        pcm = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * (i * 960 + k) / 48000)).to_bytes(
                2, "little", signed=True
            )
            for k in range(960)
        )
        frame.planes[0].update(pcm)
        frame.sample_rate = 48000
        packets += [bytes(p) for p in enc.encode(frame)]
    return packets


def test_crc_matches_the_ogg_reference_value() -> None:
    # the CRC of a page is computed with its CRC field zeroed; check a known vector
    assert crc32_ogg(b"") == 0
    assert crc32_ogg(b"OggS") == 0x5FB0A94F


def test_written_file_plays_in_ffmpeg_with_the_right_duration(tmp_path: Path) -> None:
    packets = encode_tone(2.0)
    buf = io.BytesIO()
    w = OggOpusWriter(buf.write, serial=7, tags=META.tags())
    for p in packets:
        w.add(p, opus_samples(p))
    w.close()
    path = tmp_path / "clip.ogg"
    path.write_bytes(buf.getvalue())
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.name in ("opus", "libopus")
        samples = sum(f.samples for f in container.decode(stream))
    assert abs(samples - 96000) <= 960
    parsed = read_ogg_opus(buf.getvalue())
    assert parsed.complete and parsed.packets == tuple(packets) and parsed.granule == 96000
    assert BurstMeta.from_tags(parsed.tags) == META


def test_a_truncated_file_reads_up_to_its_last_complete_page() -> None:
    packets = encode_tone(3.0)
    buf = io.BytesIO()
    w = OggOpusWriter(buf.write, serial=1, tags=META.tags())
    for p in packets:
        w.add(p, opus_samples(p))
    w.flush()
    data = buf.getvalue()
    cut = read_ogg_opus(data[:-10])
    assert not cut.complete and 0 < len(cut.packets) < len(packets)
    assert cut.packets == tuple(packets[: len(cut.packets)])
    with pytest.raises(OggError):
        read_ogg_opus(data[:30])


@given(st.lists(st.binary(min_size=0, max_size=600), min_size=1, max_size=20))
@settings(max_examples=50)
def test_pages_round_trip_any_packet_sizes(packets: list[bytes]) -> None:
    segs = sum(len(p) // 255 + 1 for p in packets)
    if segs > 255:
        return
    page = build_page(packets, granule=5, serial=3, sequence=0)
    (parsed,) = read_pages(page)
    assert parsed.granule == 5 and sum(parsed.segments) == sum(map(len, packets))


def test_opus_packet_durations_come_from_the_toc_byte() -> None:
    assert opus_samples(b"\xf8") == 960  # CELT FB 20 ms
    assert opus_samples(b"\x78\x00") == 960  # hybrid FB 20 ms (config 15)
    assert opus_samples(b"\x08") == 960  # SILK NB 20 ms
    assert opus_samples(b"\x0b\x03") == 960 * 3  # code 3, three frames
    assert opus_samples(b"") == 0


def test_sequencer_drops_late_and_duplicate_packets_and_fills_holes() -> None:
    s = Sequencer()
    p = b"\xf8\x01\x02"
    assert s.push(10, 1000, p) == [(p, 960)]
    assert s.push(10, 1000, p) == []  # duplicate
    assert s.push(9, 40, p) == []  # late
    out = s.push(13, 1000 + 3 * 960, p)  # two packets lost
    assert out == [(FILLER, 960), (FILLER, 960), (p, 960)]
    assert s.dropped == 2 and s.filled == 2
    assert s.push(0, 1000 + 4 * 960, p) == []  # 13 -> 0 is backwards (mod 2**16 beyond half)
    s2 = Sequencer()
    s2.push(65535, 2**32 - 960, p)
    assert s2.push(0, 0, p) == [(p, 960)]  # wrap-around of both counters


def test_burst_files_are_named_by_id() -> None:
    assert spool_name(META.id, part=True) == "spool/1780000000000abcdef.ogg.part"
    assert burst_id_of("1780000000000abcdef.ogg") == META.id
    assert burst_id_of("../etc.ogg") is None
    assert clip_path(META).startswith("clips/shelter-a/2026-")
    with pytest.raises(ValueError):
        BurstMeta.from_tags({"VOICE_BURST": "x"})
