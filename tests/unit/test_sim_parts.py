"""Simulated participant parts: the SDP answer, the DTLS client, receive statistics, packets."""

from __future__ import annotations

import asyncio
import time

import pytest

from voice_server.media import rtp
from voice_server.media.dtls import Certificate, DtlsServer, DtlsState
from voice_server.media.sdp import (
    OfferParams,
    build_offer,
    new_ice_credentials,
    new_slot_ssrcs,
    parse_answer,
)
from voice_server.media.srtp import SRTP_AES128_CM_SHA1_80, make_sessions
from voice_server.sim.answer import OfferError, build_answer, parse_offer
from voice_server.sim.audio import read_stamp, rtp_packet
from voice_server.sim.dtls_client import DtlsClient
from voice_server.sim.rx_stats import StreamStats


@pytest.fixture(scope="module")
def server_cert() -> Certificate:
    return Certificate.generate()


@pytest.fixture(scope="module")
def client_cert() -> Certificate:
    return Certificate.generate()


def _offer(cert: Certificate, ip: str = "127.0.0.1", slots: int = 3) -> tuple[str, OfferParams]:
    creds = new_ice_credentials()
    params = OfferParams(
        session_id=1,
        session_version=2,
        ice_ufrag=creds.ufrag,
        ice_pwd=creds.pwd,
        fingerprint=cert.fingerprint,
        ip=ip,
        port=40000,
        slot_ssrcs=new_slot_ssrcs(slots),
        cname="voice-server",
        slots=slots,
    )
    return build_offer(params), params


@pytest.mark.parametrize("slots", [1, 3, 8])
def test_answer_to_the_servers_offer_passes_the_servers_parser(
    server_cert: Certificate, client_cert: Certificate, slots: int
) -> None:
    sdp, params = _offer(server_cert, slots=slots)
    offer = parse_offer(sdp)
    assert (offer.ice_ufrag, offer.ice_pwd) == (params.ice_ufrag, params.ice_pwd)
    assert offer.fingerprint == server_cert.fingerprint
    assert (offer.ip, offer.port) == ("127.0.0.1", 40000)
    assert offer.mids == tuple(str(i) for i in range(slots + 1))
    assert offer.slot_ssrcs == params.slot_ssrcs
    assert offer.payload_type == 111 and offer.audio_level_id == 1 and offer.ice_lite

    creds = new_ice_credentials()
    answer = parse_answer(
        build_answer(offer, credentials=creds, fingerprint=client_cert.fingerprint, ssrc=1234),
        slots + 1,
    )
    assert (answer.ice_ufrag, answer.ice_pwd) == (creds.ufrag, creds.pwd)
    assert answer.fingerprint == client_cert.fingerprint
    assert answer.setup == "active"
    assert answer.can_talk and answer.media[0].ssrcs == (1234,)
    assert answer.audio_level_id == 1
    assert all(m.direction == "recvonly" for m in answer.media[1:])


def test_a_listen_only_answer_cannot_talk(server_cert: Certificate) -> None:
    offer = parse_offer(_offer(server_cert)[0])
    sdp = build_answer(
        offer, credentials=new_ice_credentials(), fingerprint="AB:" * 31 + "AB", ssrc=1, talk=False
    )
    assert not parse_answer(sdp, 4).can_talk


def test_an_offer_without_candidate_is_refused(server_cert: Certificate) -> None:
    sdp = "\r\n".join(
        line for line in _offer(server_cert)[0].split("\r\n") if "candidate:" not in line
    )
    with pytest.raises(OfferError, match="candidate"):
        parse_offer(sdp)


def _handshake(client: DtlsClient, server: DtlsServer) -> None:
    to_server = client.start()
    for _ in range(20):
        to_client = [out for d in to_server for out in server.feed(d)]
        to_server = [out for d in to_client for out in client.feed(d)]
        if not to_server and not to_client:
            break


def test_dtls_client_and_server_agree_on_keys_and_protect_media(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    client = DtlsClient(client_cert, expected_fingerprint=server_cert.fingerprint)
    server = DtlsServer(server_cert)
    _handshake(client, server)
    assert client.state is DtlsState.CONNECTED and server.state is DtlsState.CONNECTED
    assert client.profile == server.profile
    assert server.verify_fingerprint(client_cert.fingerprint)
    assert client.peer_fingerprint == server_cert.fingerprint
    assert client.keying is not None and server.keying is not None
    assert client.keying == (server.keying[1], server.keying[0])
    c_rx, c_tx = make_sessions(client.profile, client.keying)  # type: ignore[arg-type]
    s_rx, s_tx = make_sessions(server.profile, server.keying)  # type: ignore[arg-type]
    packet = rtp.build_rtp(payload_type=111, seq=1, timestamp=2, ssrc=3, payload=b"x" * 40)
    assert s_rx.unprotect(c_tx.protect(packet)) == packet
    assert c_rx.unprotect(s_tx.protect(packet)) == packet


def test_dtls_client_refuses_a_server_with_another_fingerprint(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    client = DtlsClient(client_cert, expected_fingerprint=client_cert.fingerprint)
    _handshake(client, DtlsServer(server_cert))
    assert client.state is DtlsState.FAILED
    assert "fingerprint" in (client.failure or "")
    assert client.keying is None


def test_dtls_client_negotiates_the_only_profile_it_offers(
    server_cert: Certificate, client_cert: Certificate
) -> None:
    client = DtlsClient(
        client_cert,
        expected_fingerprint=server_cert.fingerprint,
        profiles=(SRTP_AES128_CM_SHA1_80,),
    )
    _handshake(client, DtlsServer(server_cert))
    assert client.state is DtlsState.CONNECTED
    assert client.profile is SRTP_AES128_CM_SHA1_80


def test_dtls_client_retransmits_its_hello_on_timeout(client_cert: Certificate) -> None:
    client = DtlsClient(client_cert, expected_fingerprint=None)
    first = client.start()
    assert first and client.timeout() is not None
    assert client.handle_timeout() == []  # not due yet
    t = client.timeout()
    assert t is not None and 0 < t <= 1.0
    time.sleep(t + 0.05)
    again = client.handle_timeout()
    assert again and again[0][:1] == first[0][:1]  # the ClientHello, resent


def test_stream_stats_count_gaps_across_wraparound_and_jitter() -> None:
    s = StreamStats(7)
    t = 1_000_000_000
    seqs = [65533, 65534, 65535, 1, 2, 2, 0]  # 0 lost then late; 2 duplicated
    for i, seq in enumerate(seqs):
        s.on_packet(seq, 960 * i, t + 20_000_000 * i)
    assert s.expected == 6  # 65533 .. 2
    assert s.received == 7 and s.duplicates == 1 and s.reordered == 1
    assert s.lost == 0
    assert s.jitter_ms < 2.0


def test_stream_stats_loss_and_constant_delay_jitter() -> None:
    s = StreamStats(7)
    for i in range(0, 100, 2):  # every other packet lost
        s.on_packet(i, 960 * i, 20_000_000 * i)
    assert s.expected == 99 and s.lost == 49
    assert s.jitter == pytest.approx(0.0, abs=1.0)


def test_sim_packets_carry_level_and_stamp_through_a_header_rewrite() -> None:
    packet = rtp_packet(
        payload_type=111,
        marker=True,
        seq=5,
        timestamp=9,
        ssrc=11,
        level=20,
        stamp_ns=123_456_789_012,
        payload=b"opus",
    )
    assert rtp.audio_level(packet, 1) == (True, 20)
    out = rtp.rewritten(packet, payload_type=111, seq=77, timestamp=88, ssrc=99)
    assert read_stamp(out) == 123_456_789_012
    assert rtp.read_header(out)[2:5] == (77, 88, 99)
    assert out.endswith(b"opus")
    assert (
        read_stamp(rtp.build_rtp(payload_type=111, seq=1, timestamp=1, ssrc=1, payload=b"")) is None
    )


def test_ice_checks_accept_only_authenticated_answers_to_pending_requests() -> None:
    from voice_server.media import stun
    from voice_server.sim.ice import IceChecks

    server_pwd = "p" * 24
    ice = IceChecks("srvU", server_pwd, "cliU")
    request = stun.parse(ice.request())
    assert request.username == "srvU:cliU" and request.use_candidate
    assert request.ice_controlling is not None
    assert request.verify_integrity(server_pwd.encode()) and request.verify_fingerprint()

    tid = request.transaction_id
    addr = ("127.0.0.1", 5000)
    assert not ice.on_response(stun.build_binding_success(tid, addr, b"x" * 24))  # wrong key
    unknown = stun.new_transaction_id()
    assert not ice.on_response(stun.build_binding_success(unknown, addr, server_pwd.encode()))
    assert not ice.on_response(b"\x00\x01 not stun")
    assert ice.on_response(stun.build_binding_success(tid, addr, server_pwd.encode()))
    assert ice.connected
    assert not ice.on_response(stun.build_binding_success(tid, addr, server_pwd.encode()))
    consent = stun.parse(ice.request()).transaction_id
    assert not ice.on_response(stun.build_binding_success(consent, addr, server_pwd.encode()))
    assert ice.consent_replies == 1


def test_a_mic_source_sends_voice_while_talking_and_sparse_dtx_while_silent() -> None:
    from voice_server.media.rtp import read_header
    from voice_server.sim.source import DTX_FRAMES, MicSource

    source = MicSource((b"\x01" * 60, b"\x02" * 60), dtx=True, phase=3)
    silent = [source.packet(f, 0, talking=False) for f in range(2 * DTX_FRAMES)]
    assert [f for f, p in enumerate(silent) if p is not None] == [3, 23]
    voice = [source.packet(f, 0, talking=True) for f in range(40, 43)]
    headers = [read_header(p) for p in voice if p is not None]  # (pt, marker, seq, ts, ...)
    assert [h[1] for h in headers] == [True, False, False]
    seqs = [h[2] for h in headers]
    assert seqs[1] == (seqs[0] + 1) & 0xFFFF and seqs[2] == (seqs[1] + 1) & 0xFFFF
    assert (headers[1][3] - headers[0][3]) & 0xFFFFFFFF == 960
    assert MicSource((b"x",), dtx=False).packet(3, 0, talking=False) is None


async def test_the_poller_reads_ready_sockets_and_arrivals_come_from_the_kernel() -> None:
    import socket
    import time

    from voice_server.sim.rxpoll import ANC_SIZE, RxPoller, arrival_ns, enable_timestamps

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    poller = RxPoller()
    got: list[int] = []
    try:
        rx.bind(("127.0.0.1", 0))
        rx.setblocking(False)
        assert enable_timestamps(rx)
        # the kernel turns receive timestamping on for the whole system a moment later (a
        # deferred static-key switch when no socket had it): until then a datagram is stamped
        # when it is read. Wait for the switch with a throwaway datagram.
        for _ in range(100):
            tx.sendto(b"warm-up", rx.getsockname())
            await asyncio.sleep(0.02)
            _data, anc, _flags, _addr = rx.recvmsg(2048, ANC_SIZE)
            if time.perf_counter_ns() - arrival_ns(anc) > 10_000_000:
                break

        def read_one() -> None:
            _data, anc, _flags, _addr = rx.recvmsg(2048, ANC_SIZE)
            got.append(arrival_ns(anc))

        poller.add(rx.fileno(), read_one)
        sent = time.perf_counter_ns()
        tx.sendto(b"a", rx.getsockname())
        tx.sendto(b"b", rx.getsockname())
        await asyncio.sleep(0.05)  # read late: the arrival times are still when the kernel got them
        read_from = time.perf_counter_ns()
        poller.drain()
        assert len(got) == 2 and poller.events == 2
        # stamped on arrival (loopback delivers within sendto), not when read: before the reads
        # began however long this busy machine took between the two
        assert all(sent <= t < read_from for t in got), (sent, got, read_from)
        poller.set_immediate(True)
        tx.sendto(b"c", rx.getsockname())
        for _ in range(100):
            if len(got) == 3:
                break
            await asyncio.sleep(0.01)
        assert len(got) == 3  # drained by the event loop on its own
        poller.set_immediate(False)
    finally:
        poller.close()
        rx.close()
        tx.close()
