"""A participant's RTCP storm is bounded: past RTCP_BURST packets (refilled at RTCP_RATE per
second) its RTCP is dropped unread (no SRTP check, no parse) and counted as ``rtcp_flood``;
its reports after the storm are read again."""

from __future__ import annotations

import os
from unittest import mock

from voice_server.media import endpoint as endpoint_mod
from voice_server.media.counters import MediaCounters
from voice_server.media.dtls import Certificate
from voice_server.media.endpoint import RTCP_BURST, RTCP_RATE, MediaEndpoint
from voice_server.media.rtcp import ReportBlock, build_receiver_report
from voice_server.media.srtp import SRTP_AES128_CM_SHA1_80, make_sessions
from voice_server.media.transport import Transport


def test_an_rtcp_storm_is_dropped_unread_past_the_burst_and_reports_resume() -> None:
    keys = (os.urandom(30), os.urandom(30))
    server_rx, _ = make_sessions(SRTP_AES128_CM_SHA1_80, keys)
    _, client_tx = make_sessions(SRTP_AES128_CM_SHA1_80, (keys[1], keys[0]))
    counters = MediaCounters()
    ep = MediaEndpoint(counters, lambda t: None)
    t = Transport("s1", "srvU", "p" * 24, Certificate.generate())
    t.rx = server_rx
    block = ReportBlock(ssrc=1, fraction_lost=64, packets_lost=3, highest_sequence=9, jitter=0,
                        lsr=0, dlsr=0)  # fmt: skip

    def report(i: int) -> bytes:
        plain = build_receiver_report(ssrc=0x1000 + i, reports=[block])
        return bytes(client_tx.protect_rtcp(plain))

    clock = [1_000_000_000_000]
    with mock.patch.object(endpoint_mod, "_perf_ns", lambda: clock[0]):
        for i in range(RTCP_BURST * 5):  # a storm: all within the same instant
            ep._on_rtcp(t, report(i))
        assert counters.rtcp_in == RTCP_BURST
        assert counters.drop_rtcp_flood == RTCP_BURST * 4
        assert counters.drop_bad_rtcp == 0
        assert t.downlink_fraction == 64  # what it said before the cap is kept
        clock[0] += 1_000_000_000  # one second later: RTCP_RATE more are read
        for i in range(int(RTCP_RATE) + 10):
            ep._on_rtcp(t, report(1000 + i))
        assert counters.rtcp_in == RTCP_BURST + int(RTCP_RATE)
        assert counters.drop_rtcp_flood == RTCP_BURST * 4 + 10
