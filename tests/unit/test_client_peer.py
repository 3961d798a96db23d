"""The client's aiortc peer answers a server-shaped (ICE-lite, server-made) offer correctly."""

from __future__ import annotations

import asyncio
import re

import av
from aiortc import rtp
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

from voice_client.loopback import loopback_candidates
from voice_client.peer import ClientPeer, MicTrack, SlotRecorder
from voice_client.wavio import Mix

AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
SLOT_SSRCS = {"1": 1001, "2": 1002, "3": 1003}
FINGERPRINT = ":".join(f"{b:02X}" for b in range(32))


def server_offer(port: int = 9, ip: str = "127.0.0.1") -> str:
    """An offer shaped like the server's (see FACTS.md): ICE-lite, BUNDLE 0..3, one candidate."""
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1 2 3",
        "a=ice-lite",
        "a=msid-semantic:WMS voice",
    ]
    for mid in ("0", "1", "2", "3"):
        lines += [
            f"m=audio {port} UDP/TLS/RTP/SAVPF 111",
            f"c=IN IP4 {ip}",
            "a=ice-ufrag:srv1",
            "a=ice-pwd:serverpasswordserverpassword",
            f"a=fingerprint:sha-256 {FINGERPRINT}",
            "a=setup:actpass",
            f"a=mid:{mid}",
            f"a=extmap:1 {AUDIO_LEVEL}",
            "a=recvonly" if mid == "0" else "a=sendonly",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=fmtp:111 minptime=10;useinbandfec=1;usedtx=1",
        ]
        if mid != "0":
            ssrc = SLOT_SSRCS[mid]
            lines += [
                f"a=msid:voice slot{mid}",
                f"a=ssrc:{ssrc} cname:voice",
                f"a=ssrc:{ssrc} msid:voice slot{mid}",
            ]
        lines += [f"a=candidate:1 1 udp 2130706431 {ip} {port} typ host", "a=end-of-candidates"]
    return "\r\n".join(lines) + "\r\n"


def media_sections(sdp: str) -> dict[str, str]:
    sections = sdp.split("\r\nm=")[1:]
    out = {}
    for section in sections:
        mid = re.search(r"a=mid:(\S+)", section)
        assert mid is not None
        out[mid.group(1)] = section
    return out


async def answer_offer(offer: str) -> tuple[str, dict[str, MediaStreamTrack]]:
    slots: dict[str, MediaStreamTrack] = {}
    peer = ClientPeer(MicTrack(), lambda mid, track: slots.__setitem__(mid, track))
    try:
        with loopback_candidates():
            answer = await peer.answer(offer)
    finally:
        await peer.close()
    return answer, slots


async def test_answer_sends_the_microphone_on_mid_0_and_receives_the_slots() -> None:
    answer, slots = await answer_offer(server_offer())
    sections = media_sections(answer)
    assert list(sections) == ["0", "1", "2", "3"]
    assert "a=sendonly" in sections["0"]
    assert "a=ssrc:" in sections["0"]  # the microphone stream is announced
    for mid in ("1", "2", "3"):
        assert "a=recvonly" in sections[mid]
    assert sorted(slots) == ["1", "2", "3"]
    assert all(track.kind == "audio" for track in slots.values())


async def test_answer_keeps_the_servers_payload_type_and_extension_id() -> None:
    answer, _ = await answer_offer(server_offer())
    for section in media_sections(answer).values():
        assert section.startswith("audio ") and "UDP/TLS/RTP/SAVPF 111" in section.split("\r\n")[0]
        assert "a=rtpmap:111 opus/48000/2" in section
        assert f"a=extmap:1 {AUDIO_LEVEL}" in section
        assert "a=rtcp-mux" in section


async def test_answer_is_dtls_client_bundled_with_a_loopback_candidate() -> None:
    answer, _ = await answer_offer(server_offer())
    assert "a=group:BUNDLE 0 1 2 3" in answer
    assert "a=ice-lite" not in answer
    sections = media_sections(answer)
    assert "a=setup:active" in sections["0"]
    candidates = re.findall(r"a=candidate:\S+ 1 udp \d+ (\S+) \d+ typ host", answer)
    assert candidates and set(candidates) == {"127.0.0.1"}
    assert "a=fingerprint:sha-256 " in answer


async def test_offer_without_a_microphone_mid_is_refused() -> None:
    offer = server_offer().replace("a=mid:0", "a=mid:9").replace("BUNDLE 0 1", "BUNDLE 9 1")
    peer = ClientPeer(MicTrack(), lambda mid, track: None)
    try:
        with loopback_candidates():
            try:
                await peer.answer(offer)
            except ValueError as exc:
                assert "mid 0" in str(exc)
            else:
                raise AssertionError("an offer without mid 0 was answered")
    finally:
        await peer.close()


def test_negotiated_audio_level_id_is_what_aiortc_writes_on_the_wire() -> None:
    """aiortc's RTP header writer uses the extmap id from the SDP, here the server's 1."""
    extensions = rtp.HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(headerExtensions=[RTCRtpHeaderExtensionParameters(id=1, uri=AUDIO_LEVEL)])
    )
    packet = rtp.RtpPacket(payload_type=111, sequence_number=1, timestamp=0, ssrc=5)
    packet.extensions.audio_level = (False, 30)
    packet.payload = b"\x00"
    data = packet.serialize(extensions)
    # one-byte header extension (0xBEDE), element id 1, length 0 (1 byte), value 30
    assert data[12:14] == b"\xbe\xde"
    assert data[16] == (1 << 4) | 0
    assert data[17] == 30
    assert rtp.RtpPacket.parse(data, extensions).extensions.audio_level == (False, 30)


async def test_a_closed_peer_connection_leaves_the_microphone_live_for_the_next() -> None:
    """aiortc stops a sender's track when its connection closes; after a reconnect to a new
    session the next peer connection must still send the microphone."""
    mic = MicTrack(b"\x01\x00" * 960, loop=True)
    sent: list[MediaStreamTrack] = []
    for _ in range(2):
        peer = ClientPeer(mic, lambda mid, track: None)
        with loopback_candidates():
            await peer.answer(server_offer())
        sender = next(t.sender for t in peer.pc.getTransceivers() if t.mid == "0")
        assert sender.track is not None and sender.track is not mic
        frame = await sender.track.recv()
        assert bytes(frame.planes[0])[:2] == b"\x01\x00"
        sent.append(sender.track)
        sender.track.stop()  # what aiortc's RTP loop does when the connection closes
        await peer.close()
        assert mic.readyState == "live"
    assert sent[0] is not sent[1] and sent[0].readyState == "ended"


async def test_mic_track_plays_the_file_once_then_silence() -> None:
    pcm = b"\x10\x00" * 960 * 2  # two frames of a constant
    track = MicTrack(pcm)
    frames = [await track.recv() for _ in range(3)]
    assert [bytes(f.planes[0])[:4] for f in frames] == [b"\x10\x00\x10\x00"] * 2 + [bytes(4)]
    assert [f.pts for f in frames] == [0, 960, 1920]
    assert all(f.sample_rate == 48000 and f.samples == 960 for f in frames)
    assert track.finished and track.played == 2


async def test_mic_track_loops_when_asked() -> None:
    track = MicTrack(b"\x01\x00" * 960, loop=True)
    for _ in range(3):
        frame = await track.recv()
        assert bytes(frame.planes[0])[:2] == b"\x01\x00"
    assert not track.finished and track.played == 3


async def test_mic_track_is_paced_in_real_time() -> None:
    track = MicTrack()
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(6):
        await track.recv()
    assert loop.time() - start >= 0.09  # 5 x 20 ms after the first frame


def stereo_frame(pts: int, value: int) -> av.AudioFrame:
    frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
    frame.planes[0].update(value.to_bytes(2, "little", signed=True) * 960 * 2)
    frame.sample_rate = 48000
    frame.pts = pts
    return frame


def test_recorder_places_frames_by_rtp_time_from_the_first_arrival() -> None:
    mix = Mix()
    rec = SlotRecorder("1", t0=100.0, mix=mix)
    rec.add(stereo_frame(0, 1000), arrival=100.5)  # first frame: 0.5 s after join
    rec.add(stereo_frame(960, 1000), arrival=100.53)  # jitter does not move it
    rec.add(stereo_frame(960 * 50, 2000), arrival=101.52)  # after a 1 s gap (DTX)
    assert rec.frames == 3
    out = mix.render()
    samples = [int.from_bytes(out[i : i + 2], "little", signed=True) for i in range(0, len(out), 2)]
    assert samples[24000 - 1] == 0 and samples[24000] == 1000
    assert samples[24000 + 1919] == 1000 and samples[24000 + 1920] == 0
    assert samples[24000 + 48000] == 2000
    assert len(samples) == 24000 + 48000 + 960


def test_recorder_reanchors_when_the_rtp_clock_jumps() -> None:
    rec = SlotRecorder("1", t0=0.0, mix=Mix())
    assert rec.position(5000, 1.0) == 48000
    assert rec.position(5000 + 960, 1.02) == 48960
    assert rec.position(5000 + 10 * 48000, 2.0) == 96000  # 10 s of RTP in 1 s: trust arrival


def test_recorder_without_a_mix_only_counts() -> None:
    rec = SlotRecorder("2", t0=0.0)
    rec.add(stereo_frame(0, 5), arrival=0.1)
    assert rec.frames == 1
