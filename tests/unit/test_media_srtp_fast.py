"""The direct libsrtp seam gives the same bytes as pylibsrtp's own methods."""

from __future__ import annotations

import os

import pytest

from voice_server.media.srtp import DEFAULT_PROFILES, SrtpProfile, make_sessions
from voice_server.media.srtp_fast import FAST, FastSrtp, PublicSrtp, fast_session
from voice_server.sim.audio import rtp_packet


def _packet(seq: int, size: int = 60) -> bytes:
    return rtp_packet(
        payload_type=111,
        marker=False,
        seq=seq,
        timestamp=seq * 960,
        ssrc=42,
        level=20,
        stamp_ns=0,
        payload=bytes(size),
    )


def _keys(profile: SrtpProfile) -> tuple[bytes, bytes]:
    n = profile.key_length + profile.salt_length
    return os.urandom(n), os.urandom(n)


def test_the_fast_seam_is_available_with_the_pinned_pylibsrtp() -> None:
    assert FAST
    rx, _tx = make_sessions(DEFAULT_PROFILES[0], _keys(DEFAULT_PROFILES[0]))
    assert isinstance(fast_session(rx), FastSrtp)


@pytest.mark.parametrize("profile", DEFAULT_PROFILES, ids=lambda p: p.name)
def test_fast_protect_equals_pylibsrtp_and_round_trips(profile: SrtpProfile) -> None:
    keys = _keys(profile)
    _, tx_a = make_sessions(profile, keys)
    _, tx_b = make_sessions(profile, keys)
    rx, _ = make_sessions(profile, (keys[1], keys[0]))
    fast_tx = fast_session(tx_b)
    fast_rx = fast_session(make_sessions(profile, (keys[1], keys[0]))[0])
    for seq in range(1, 50):
        plain = _packet(seq)
        protected = fast_tx.protect(plain)
        assert protected == tx_a.protect(plain)
        assert rx.unprotect(protected) == plain
        assert fast_rx.unprotect(protected) == plain


@pytest.mark.parametrize("codec", [FastSrtp, PublicSrtp])
def test_failures_return_none(codec: type[FastSrtp] | type[PublicSrtp]) -> None:
    profile = DEFAULT_PROFILES[0]
    keys = _keys(profile)
    _, tx = make_sessions(profile, keys)
    rx = codec(make_sessions(profile, (keys[1], keys[0]))[0])
    protected = fast_session(tx).protect(_packet(7))
    assert protected is not None
    tampered = protected[:-1] + bytes([protected[-1] ^ 1])
    assert rx.unprotect(tampered) is None  # authentication failure
    assert rx.unprotect(protected) == _packet(7)
    assert rx.unprotect(protected) is None  # replay
    assert codec(tx).protect(_packet(8, size=1400)) is None  # does not fit the buffer
