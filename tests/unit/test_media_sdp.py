"""SDP: the server's offer as aiortc applies it, and answers from aiortc and Chromium."""

from __future__ import annotations

import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.media import sdp
from voice_server.media.sdp import OfferParams, SdpError

FP = ":".join(["AB"] * 32)


def _params(**changes: object) -> OfferParams:
    base: dict[str, object] = {
        "session_id": 4242,
        "session_version": 2,
        "ice_ufrag": "srvU1234",
        "ice_pwd": "abcdefghijklmnopqrstuvwx",
        "fingerprint": FP,
        "ip": "127.0.0.1",
        "port": 40000,
        "slot_ssrcs": (11111, 22222, 33333),
        "cname": "voice-server",
    }
    base.update(changes)
    return OfferParams(**base)  # type: ignore[arg-type]


def _mline_blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    for line in text.split("\r\n"):
        if line.startswith("m="):
            blocks.append([])
        if blocks:
            blocks[-1].append(line)
    return blocks


def test_offer_layout() -> None:
    offer = sdp.build_offer(_params())
    assert offer.endswith("\r\n") and "\n" not in offer.replace("\r\n", "")
    session = offer.split("m=")[0]
    assert "a=ice-lite\r\n" in session
    assert "a=group:BUNDLE 0 1 2 3\r\n" in session
    assert "a=msid-semantic: WMS *\r\n" in session
    blocks = _mline_blocks(offer)
    assert len(blocks) == 4
    for mid, block in enumerate(blocks):
        assert block[0] == "m=audio 40000 UDP/TLS/RTP/SAVPF 63 111"  # RED first
        for line in (
            "c=IN IP4 127.0.0.1",
            "a=rtcp:40000 IN IP4 127.0.0.1",
            "a=ice-ufrag:srvU1234",
            "a=ice-pwd:abcdefghijklmnopqrstuvwx",
            f"a=fingerprint:sha-256 {FP}",
            "a=setup:actpass",
            f"a=mid:{mid}",
            "a=rtcp-mux",
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:63 red/48000/2",
            "a=fmtp:63 111/111",
            "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            f"a=candidate:1 1 udp {(120 << 24) | 255} 127.0.0.1 40000 typ host",
            "a=end-of-candidates",
        ):
            assert line in block, (mid, line)
        fmtp = next(x for x in block if x.startswith("a=fmtp:111 "))
        assert "useinbandfec=1" in fmtp and "usedtx=1" in fmtp and "stereo=0" in fmtp
        assert "maxaveragebitrate=32000" in fmtp
        assert ("a=recvonly" if mid == 0 else "a=sendonly") in block
    assert not any(x.startswith("a=ssrc:") for x in blocks[0])
    for mid, ssrc in ((1, 11111), (2, 22222), (3, 33333)):
        assert f"a=ssrc:{ssrc} cname:voice-server" in blocks[mid]
        assert f"a=ssrc:{ssrc} msid:slot{mid} slot{mid}-audio" in blocks[mid]
        assert f"a=msid:slot{mid} slot{mid}-audio" in blocks[mid]
    assert "a=rtcp-fb" not in offer


def test_offer_without_red() -> None:
    offer = sdp.build_offer(_params(red_payload_type=None))
    assert "red/" not in offer.lower() and "m=audio 40000 UDP/TLS/RTP/SAVPF 111\r\n" in offer


def test_offer_slot_count_and_ipv6() -> None:
    offer = sdp.build_offer(_params(slots=1, slot_ssrcs=(5,), ip="::1", ptime=None))
    assert "a=group:BUNDLE 0 1\r\n" in offer
    assert "c=IN IP6 ::1" in offer and "a=rtcp:40000 IN IP6 ::1" in offer
    assert "a=ptime" not in offer


@pytest.mark.parametrize(
    "changes",
    [
        {"slot_ssrcs": (1, 2)},
        {"slot_ssrcs": (1, 1, 2)},
        {"slot_ssrcs": (0, 1, 2)},
        {"ice_ufrag": "abc"},
        {"ice_pwd": "short"},
        {"ice_pwd": "x" * 21 + " "},
        {"fingerprint": FP.lower()},
        {"port": 0},
        {"audio_level_id": 15},
        {"cname": "two words"},
        {"ip": "1.2.3.4\r\na=evil"},
    ],
)
def test_bad_offer_params_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sdp.build_offer(_params(**changes))


def test_new_credentials_and_ssrcs() -> None:
    creds = {sdp.new_ice_credentials() for _ in range(20)}
    assert len(creds) == 20
    for c in creds:
        assert re.fullmatch(r"[A-Za-z0-9+/]{8}", c.ufrag)
        assert re.fullmatch(r"[A-Za-z0-9+/]{24}", c.pwd)
    ssrcs = sdp.new_slot_ssrcs(5)
    assert len(set(ssrcs)) == 5 and all(ssrcs)


async def _aiortc_answer(offer: str, *, talk: bool = True) -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        for t in pc.getTransceivers():
            assert t.direction == "recvonly"
            if t.mid == "0" and talk:
                t.sender.replaceTrack(AudioStreamTrack())
                t.direction = "sendonly"
        answer = await pc.createAnswer()
        assert answer is not None
        return answer.sdp
    finally:
        await pc.close()


async def test_aiortc_answers_the_offer() -> None:
    text = await _aiortc_answer(sdp.build_offer(_params()))
    answer = sdp.parse_answer(text, 4)
    assert answer.setup == "active"
    assert answer.fingerprint_algorithm == "sha-256"
    fp = re.search(r"a=fingerprint:sha-256 (\S+)", text)
    assert fp is not None and answer.fingerprint == fp.group(1)
    assert answer.payload_type == 111 and answer.audio_level_id == 1
    assert answer.can_talk and not answer.red_heard  # aiortc has no RED: it hears primaries
    assert answer.media[0].direction == "sendonly" and len(answer.media[0].ssrcs) == 1
    assert [m.direction for m in answer.media[1:]] == ["recvonly"] * 3
    assert all(m.payload_type == 111 and m.audio_level_id == 1 for m in answer.media)
    assert len(answer.ice_ufrag) >= 4 and len(answer.ice_pwd) >= 22


async def test_aiortc_without_microphone_cannot_talk() -> None:
    answer = sdp.parse_answer(await _aiortc_answer(sdp.build_offer(_params()), talk=False), 4)
    assert answer.media[0].direction == "inactive"
    assert not answer.can_talk


async def test_aiortc_accepts_an_ipv6_offer() -> None:
    offer = sdp.build_offer(_params(ip="::1", slots=2, slot_ssrcs=(1, 2)))
    answer = sdp.parse_answer(await _aiortc_answer(offer), 3)
    assert answer.can_talk and len(answer.media) == 3


# What Chromium 13x answers to the offer (shape as captured; keys and ids replaced).
CHROMIUM_ANSWER = (
    "\r\n".join(
        [
            "v=0",
            "o=- 3390818214632451097 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=group:BUNDLE 0 1 2 3",
            "a=msid-semantic: WMS 5f2a6c1e-8d4b-4f0a-9c3e-1b7d2e6f4a90",
        ]
        + [
            line
            for mid in range(4)
            for line in [
                "m=audio 9 UDP/TLS/RTP/SAVPF 111",
                "c=IN IP4 0.0.0.0",
                "a=rtcp:9 IN IP4 0.0.0.0",
                "a=ice-ufrag:Qm3x",
                "a=ice-pwd:u7Jc0LQwH2kTzX9pR4sVbN1e",
                "a=ice-options:trickle",
                "a=fingerprint:sha-256 3C:9E:52:0B:7A:41:D8:6F:E2:15:C4:99:08:AB:7D:3E:"
                "61:F0:2C:84:5B:D9:A7:13:E6:40:9F:2B:C8:75:1D:0A",
                "a=setup:active",
                f"a=mid:{mid}",
                "a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level",
                "a=sendonly" if mid == 0 else "a=recvonly",
            ]
            + (
                ["a=msid:5f2a6c1e-8d4b-4f0a-9c3e-1b7d2e6f4a90 0b8e4d2f-6a1c-4e97-b3d5-7c9f1a2e8b64"]
                if mid == 0
                else []
            )
            + [
                "a=rtcp-mux",
                "a=rtpmap:111 opus/48000/2",
                "a=fmtp:111 minptime=10;sprop-stereo=0;stereo=0;usedtx=1;useinbandfec=1",
                "a=ptime:20",
            ]
            + (
                [
                    "a=ssrc:2873044915 cname:Hk9rT2xq5VbN8wLz",
                    "a=ssrc:2873044915 msid:5f2a6c1e-8d4b-4f0a-9c3e-1b7d2e6f4a90 "
                    "0b8e4d2f-6a1c-4e97-b3d5-7c9f1a2e8b64",
                ]
                if mid == 0
                else []
            )
        ]
    )
    + "\r\n"
)


def test_chromium_answer_parses() -> None:
    answer = sdp.parse_answer(CHROMIUM_ANSWER, 4)
    assert answer.ice_ufrag == "Qm3x" and answer.ice_pwd == "u7Jc0LQwH2kTzX9pR4sVbN1e"
    assert answer.fingerprint.startswith("3C:9E:52") and answer.setup == "active"
    assert answer.can_talk and answer.payload_type == 111 and answer.audio_level_id == 1
    assert answer.media[0].ssrcs == (2873044915,)
    assert [m.direction for m in answer.media] == ["sendonly", "recvonly", "recvonly", "recvonly"]
    assert not answer.red_heard and not answer.media[0].red


def test_chromium_answer_with_red() -> None:
    text = CHROMIUM_ANSWER.replace("SAVPF 111", "SAVPF 63 111").replace(
        "a=rtpmap:111 opus/48000/2", "a=rtpmap:63 red/48000/2\r\na=rtpmap:111 opus/48000/2"
    )
    answer = sdp.parse_answer(text, 4)
    assert answer.red_heard and all(m.red for m in answer.media)
    dropped = text.replace("SAVPF 63 111", "SAVPF 111", 2)  # mid 0 and slot 1 without it
    answer = sdp.parse_answer(dropped, 4)
    assert not answer.red_heard and not answer.media[0].red and answer.media[2].red


def _replace(old: str, new: str, count: int = -1) -> str:
    assert old in CHROMIUM_ANSWER
    return CHROMIUM_ANSWER.replace(old, new, count)


def test_rejected_slot_and_unix_newlines_are_accepted() -> None:
    text = CHROMIUM_ANSWER.replace("\r\n", "\n")
    blocks = text.split("m=audio 9 ")
    blocks[3] = "0 " + blocks[3]  # the m-line of mid 2 rejected with port 0
    text = "m=audio 9 ".join(blocks[:3]) + "m=audio " + "m=audio 9 ".join(blocks[3:])
    text = text.replace("a=group:BUNDLE 0 1 2 3", "a=group:BUNDLE 0 1 3")
    assert "m=audio 0 UDP/TLS/RTP/SAVPF 111" in text
    answer = sdp.parse_answer(text, 4)
    assert not answer.media[2].accepted and answer.media[2].direction == "inactive"
    assert answer.media[3].accepted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_replace("a=setup:active", "a=setup:passive"), "setup"),
        (_replace("a=setup:active", "a=setup:actpass"), "setup"),
        (_replace("a=fingerprint:sha-256", "a=fingerprint:sha-1"), "fingerprint"),
        (_replace("3C:9E:52", "3C:9E"), "fingerprint"),
        (_replace("a=ice-pwd:u7Jc0LQwH2kTzX9pR4sVbN1e", "a=ice-pwd:short"), "ice-pwd"),
        (_replace("a=ice-ufrag:Qm3x", "a=x:y"), "ice-ufrag"),
        (_replace("UDP/TLS/RTP/SAVPF 111", "UDP/TLS/RTP/SAVPF 96"), "payload type"),
        (_replace("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 G722/8000"), "opus"),
        (_replace("a=rtcp-mux", "a=rtcp-nomux"), "rtcp-mux"),
        (_replace("a=mid:2", "a=mid:7"), "a=mid:2"),
        (_replace("a=group:BUNDLE 0 1 2 3", "a=group:BUNDLE 0 1 2"), "bundled"),
        (_replace("m=audio 9 UDP", "m=audio 0 UDP", 1), "rejected"),
        (_replace("m=audio 9 UDP", "m=video 9 UDP", 1), "audio"),
        (_replace("m=audio 9 UDP", "m=audio 99999 UDP", 1), "port"),
        (_replace("a=sendonly", "a=sendonly\r\na=recvonly"), "direction"),
        (_replace("v=0", "v=1"), "version"),
        (_replace("s=-", "this is not sdp"), "line 3"),
        (CHROMIUM_ANSWER + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "more m-lines"),
        (CHROMIUM_ANSWER.split("m=audio")[0], "0 m-lines"),
        (CHROMIUM_ANSWER + "a=x:" + "y" * 2000 + "\r\n", "longer than"),
        (CHROMIUM_ANSWER + "a=x\r\n" * 4000, "more than"),
        (CHROMIUM_ANSWER + " " * 70000, "longer than"),
        ("", "0 m-lines"),
    ],
)
def test_unusable_answers_raise_sdp_error(text: str, message: str) -> None:
    with pytest.raises(SdpError, match=message):
        sdp.parse_answer(text, 4)


def test_m_line_count_must_match_the_offer() -> None:
    with pytest.raises(SdpError, match="m-lines"):
        sdp.parse_answer(CHROMIUM_ANSWER, 3)
    with pytest.raises(SdpError, match="4 m-lines, the offer had 5"):
        sdp.parse_answer(CHROMIUM_ANSWER, 5)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_sdp_error(text: str) -> None:
    try:
        sdp.parse_answer(text, 4)
    except SdpError:
        pass


_LINES = CHROMIUM_ANSWER.split("\r\n")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, len(_LINES) - 1), max_size=6),
    st.lists(st.tuples(st.integers(0, len(_LINES) - 1), st.text(max_size=30)), max_size=3),
)
def test_mutated_answers_raise_only_sdp_error(
    drops: list[int], edits: list[tuple[int, str]]
) -> None:
    lines = list(_LINES)
    for i, extra in edits:
        lines[i] = lines[i][: len(extra)] + extra
    lines = [line for i, line in enumerate(lines) if i not in set(drops)]
    try:
        sdp.parse_answer("\r\n".join(lines), 4)
    except SdpError:
        pass


def test_each_ice_generation_outranks_the_one_before_on_every_browser_host_pair() -> None:
    """Pair priority (RFC 8445 6.1.2.3, the browser controlling: G its candidate, D ours):
    below every browser host candidate (type preference 126), ours is the min term, so a new
    generation's pair on the browser's *lowest* host candidate outranks the old generation's on
    its highest, and within a generation the browser's order stands; ICE-TCP stays below."""
    from voice_server.media.sdp import TCP_HOST_PRIORITY, host_priority

    def pair(g: int, d: int) -> int:
        return (min(g, d) << 32) + 2 * max(g, d) + (1 if g > d else 0)

    low, high = (126 << 24) | 255, (126 << 24) | (0xFFFF << 8) | 255  # browser host candidates
    for gen in (0, 1, 7, 0xFFFE):
        assert pair(low, host_priority(gen + 1)) > pair(high, host_priority(gen))
        assert pair(high, host_priority(gen)) > pair(low, host_priority(gen))
        assert host_priority(gen) > TCP_HOST_PRIORITY
    assert host_priority(10**6) == host_priority(0xFFFF) < 2**31
