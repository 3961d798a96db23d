"""SRTP helpers: RFC 5764 keying layout, sessions for both profiles, documented errors."""

from __future__ import annotations

import pylibsrtp
import pytest

from voice_server.media import rtcp, rtp, srtp
from voice_server.media.srtp import SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80, SrtpProfile

PROFILES = [SRTP_AEAD_AES_128_GCM, SRTP_AES128_CM_SHA1_80]


def _material(p: SrtpProfile) -> bytes:
    return bytes(range(p.keying_length))


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_keying_layout_is_client_key_server_key_client_salt_server_salt(
    profile: SrtpProfile,
) -> None:
    k, s = profile.key_length, profile.salt_length
    m = _material(profile)
    rx, tx = srtp.split_keying(profile, m, server=True)
    assert rx == m[:k] + m[2 * k : 2 * k + s]  # client key + client salt
    assert tx == m[k : 2 * k] + m[2 * k + s :]  # server key + server salt
    assert srtp.split_keying(profile, m, server=False) == (tx, rx)
    with pytest.raises(ValueError):
        srtp.split_keying(profile, m[:-1], server=True)


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_server_and_client_sessions_interoperate(profile: SrtpProfile) -> None:
    m = _material(profile)
    s_rx, s_tx = srtp.make_sessions(profile.name, srtp.split_keying(profile, m, server=True))
    c_rx, c_tx = srtp.make_sessions(profile, srtp.split_keying(profile, m, server=False))
    pkt = rtp.build_rtp(
        payload_type=111,
        seq=5,
        timestamp=960,
        ssrc=1234,
        payload=bytes(50),
        audio_level=(True, 20),
    )
    protected = c_tx.protect(pkt)
    assert len(protected) == len(pkt) + profile.rtp_overhead
    assert s_rx.unprotect(protected) == pkt
    report = rtcp.build_sender_report(
        ssrc=99, unix_time=1.0, rtp_timestamp=0, packet_count=1, octet_count=2, cname="c"
    )
    assert c_rx.unprotect_rtcp(s_tx.protect_rtcp(report)) == report
    # one tx session protects several slot SSRCs
    for ssrc in (1, 2, 3):
        p = rtp.build_rtp(payload_type=111, seq=1, timestamp=0, ssrc=ssrc, payload=b"x")
        assert c_rx.unprotect(s_tx.protect(p)) == p


def test_documented_errors() -> None:
    p = SRTP_AES128_CM_SHA1_80
    _, tx = srtp.make_sessions(p, srtp.split_keying(p, _material(p), server=False))
    s_rx, _ = srtp.make_sessions(p, srtp.split_keying(p, _material(p), server=True))
    pkt = rtp.build_rtp(payload_type=111, seq=9, timestamp=0, ssrc=1, payload=bytes(20))
    protected = tx.protect(pkt)
    assert tx.protect(pkt) == protected  # allow_repeat_tx
    tampered = protected[:-1] + bytes([protected[-1] ^ 1])
    with pytest.raises(pylibsrtp.Error):
        s_rx.unprotect(tampered)  # authentication failure
    s_rx.unprotect(protected)
    with pytest.raises(pylibsrtp.Error):
        s_rx.unprotect(protected)  # replay
    with pytest.raises(TypeError):
        s_rx.unprotect(bytearray(protected))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        tx.protect(pkt + bytes(1400))
    with pytest.raises(ValueError):
        srtp.make_sessions(p, (b"short", b"short"))
    with pytest.raises(KeyError):
        srtp.make_sessions("SRTP_NULL", (b"", b""))
