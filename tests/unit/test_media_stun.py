"""STUN: RFC 5769 vectors, interoperability with aioice in both directions, fuzzing."""

from __future__ import annotations

import pytest
from aioice import stun as aioice_stun
from hypothesis import given, settings
from hypothesis import strategies as st

from voice_server.media import stun
from voice_server.media.errors import PacketError
from voice_server.media.stun import StunClass

PWD = b"VOkJxbRl1RmTxUk/WvJxBt"

# RFC 5769 section 2.1: sample request
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae"
    "802200105354554e207465737420636c69656e74"
    "002400046e0001ff"
    "80290008932ff9b151263b36"
    "000600096576746a3a68367659202020"
    "000800149aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2"
    "80280004e57a3bcf"
)
# RFC 5769 section 2.2: sample IPv4 response
RFC5769_RESPONSE_V4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae"
    "8022000b7465737420766563746f7220"
    "002000080001a147e112a643"
    "000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7"
    "80280004c07d4c96"
)


def test_rfc5769_request_vector_parses_and_verifies() -> None:
    msg = stun.parse(RFC5769_REQUEST)
    assert msg.method == stun.BINDING
    assert msg.message_class is StunClass.REQUEST
    assert msg.transaction_id == bytes.fromhex("b7e7a701bc34d686fa87dfae")
    assert msg.username == "evtj:h6vY"
    assert msg.username_parts == ("evtj", "h6vY")
    assert msg.priority == 0x6E0001FF
    assert msg.ice_controlled == 0x932FF9B151263B36
    assert msg.ice_controlling is None
    assert not msg.use_candidate
    assert msg.verify_fingerprint()
    assert msg.verify_integrity(PWD)
    assert not msg.verify_integrity(b"wrong")


def test_rfc5769_ipv4_response_vector_parses_and_verifies() -> None:
    msg = stun.parse(RFC5769_RESPONSE_V4)
    assert msg.message_class is StunClass.SUCCESS
    assert msg.xor_mapped_address == ("192.0.2.1", 32853)
    assert msg.verify_fingerprint()
    assert msg.verify_integrity(PWD)


def test_any_flipped_bit_breaks_the_fingerprint() -> None:
    for i in range(len(RFC5769_REQUEST) - 4):
        data = bytearray(RFC5769_REQUEST)
        data[i] ^= 0x01
        try:
            msg = stun.parse(bytes(data))
        except PacketError:
            continue
        assert not msg.verify_fingerprint()


def test_tampered_body_fails_integrity() -> None:
    data = bytearray(RFC5769_REQUEST)
    data[45] ^= 0x10  # inside the PRIORITY value
    msg = stun.parse(bytes(data))
    assert not msg.verify_integrity(PWD)


def test_aioice_check_is_understood_by_server() -> None:
    req = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.REQUEST,
    )
    req.attributes["USERNAME"] = "srvU:cliU"
    req.attributes["PRIORITY"] = 1853824767
    req.attributes["ICE-CONTROLLING"] = 0x1122334455667788
    req.attributes["USE-CANDIDATE"] = None
    req.add_message_integrity(b"serverpassword-0123456789")
    msg = stun.parse(bytes(req))
    assert msg.transaction_id == req.transaction_id
    assert msg.username_parts == ("srvU", "cliU")
    assert msg.priority == 1853824767
    assert msg.ice_controlling == 0x1122334455667788
    assert msg.use_candidate
    assert msg.verify_fingerprint()
    assert msg.verify_integrity(b"serverpassword-0123456789")
    assert not msg.verify_integrity(b"serverpassword-012345678X")


@pytest.mark.parametrize(
    "addr",
    [("127.0.0.2", 50000), ("10.1.2.3", 1), ("::1", 65535), ("2001:db8::42", 3478)],
)
def test_success_response_is_accepted_by_aioice(addr: tuple[str, int]) -> None:
    tid = stun.new_transaction_id()
    data = stun.build_binding_success(tid, addr, b"pw-1234567890123456789012")
    resp = aioice_stun.parse_message(data)  # raises on a bad fingerprint
    assert resp.message_class == aioice_stun.Class.RESPONSE
    assert resp.message_method == aioice_stun.Method.BINDING
    assert resp.transaction_id == tid
    assert resp.attributes["XOR-MAPPED-ADDRESS"] == addr
    assert resp.check_message_integrity(b"pw-1234567890123456789012")
    ours = stun.parse(data)
    assert ours.xor_mapped_address == addr
    assert ours.verify_fingerprint() and ours.verify_integrity(b"pw-1234567890123456789012")


def test_ipv4_mapped_source_is_reported_as_ipv4() -> None:
    data = stun.build_binding_success(b"x" * 12, ("::ffff:127.0.0.2", 4000), b"k")
    assert stun.parse(data).xor_mapped_address == ("127.0.0.2", 4000)


def test_aioice_success_response_parses() -> None:
    resp = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING,
        message_class=aioice_stun.Class.RESPONSE,
    )
    resp.attributes["XOR-MAPPED-ADDRESS"] = ("2001:db8::1", 1234)
    resp.add_message_integrity(b"key")
    msg = stun.parse(bytes(resp))
    assert msg.message_class is StunClass.SUCCESS
    assert msg.xor_mapped_address == ("2001:db8::1", 1234)
    assert msg.verify_integrity(b"key") and msg.verify_fingerprint()


@pytest.mark.parametrize("code", [400, 401, 487])
def test_error_responses_are_accepted_by_aioice(code: int) -> None:
    tid = stun.new_transaction_id()
    key = b"k" * 22 if code == 487 else None
    data = stun.build_binding_error(tid, code, password=key)
    resp = aioice_stun.parse_message(data)
    assert resp.message_class == aioice_stun.Class.ERROR
    assert resp.error_code == code
    assert resp.attributes["ERROR-CODE"][1] == stun.REASONS[code]
    ours = stun.parse(data)
    assert ours.message_class is StunClass.ERROR
    assert ours.error_code == (code, stun.REASONS[code])
    assert ours.verify_fingerprint()
    assert ours.verify_integrity(key) if key else ours.message_integrity is None


def test_unknown_attributes_error() -> None:
    data = stun.build_binding_error(b"t" * 12, 420, unknown_attributes=[0x0031, 0x0032])
    assert stun.parse(data).error_code == (420, "Unknown Attribute")


@pytest.mark.parametrize("controlling", [True, False])
def test_client_request_is_accepted_by_aioice(controlling: bool) -> None:
    data = stun.build_binding_request(
        username="srvU:cliU",
        password=b"serverpassword-0123456789",
        priority=0x7E7FFFFF,
        tie_breaker=0xDEADBEEF01020304,
        controlling=controlling,
        use_candidate=controlling,
    )
    req = aioice_stun.parse_message(data)
    assert req.message_class == aioice_stun.Class.REQUEST
    assert req.attributes["USERNAME"] == "srvU:cliU"
    assert req.attributes["PRIORITY"] == 0x7E7FFFFF
    name = "ICE-CONTROLLING" if controlling else "ICE-CONTROLLED"
    assert req.attributes[name] == 0xDEADBEEF01020304
    assert ("USE-CANDIDATE" in req.attributes) == controlling
    assert req.check_message_integrity(b"serverpassword-0123456789")
    ours = stun.parse(data)
    assert ours.use_candidate == controlling
    assert ours.verify_integrity(b"serverpassword-0123456789")


def test_attributes_after_integrity_are_ignored_and_after_fingerprint_rejected() -> None:
    req = aioice_stun.Message(
        message_method=aioice_stun.Method.BINDING, message_class=aioice_stun.Class.REQUEST
    )
    req.attributes["USERNAME"] = "a:b"
    req.add_message_integrity(b"key")
    data = bytes(req)
    # insert a PRIORITY between MESSAGE-INTEGRITY and FINGERPRINT, fix the length, drop FP
    body = data[20:-8] + bytes.fromhex("0024000400000005")
    data2 = data[:2] + len(body).to_bytes(2, "big") + data[4:20] + body
    msg = stun.parse(data2)
    assert msg.priority is None
    assert msg.fingerprint is None and not msg.verify_fingerprint()
    # anything after FINGERPRINT is malformed
    body3 = data[20:] + bytes.fromhex("0024000400000005")
    data3 = data[:2] + len(body3).to_bytes(2, "big") + data[4:20] + body3
    with pytest.raises(PacketError):
        stun.parse(data3)


def test_is_stun_precheck() -> None:
    assert stun.is_stun(RFC5769_REQUEST)
    assert not stun.is_stun(RFC5769_REQUEST[:-1])
    assert not stun.is_stun(b"\x16\xfe\xfd" + bytes(40))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(19),
        RFC5769_REQUEST[:-1],
        b"\xc0" + RFC5769_REQUEST[1:],  # top bits
        RFC5769_REQUEST[:4] + b"\x00\x00\x00\x00" + RFC5769_REQUEST[8:],  # no cookie
        RFC5769_REQUEST[:2] + b"\x00\x59" + RFC5769_REQUEST[4:] + b"\x00",  # length % 4
        bytes.fromhex("000100082112a442") + bytes(12) + bytes.fromhex("0006000a41414141"),
        bytes.fromhex("000100082112a442") + bytes(12) + bytes.fromhex("0024000300000000"),
        bytes.fromhex("000100082112a442") + bytes(12) + bytes.fromhex("00060004ffffffff"),
        bytes.fromhex("0101000c2112a442") + bytes(12) + bytes.fromhex("002000080003000000000000"),
    ],
)
def test_malformed_messages_raise_packet_error(data: bytes) -> None:
    with pytest.raises(PacketError):
        stun.parse(data)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_packet_error(data: bytes) -> None:
    try:
        stun.parse(data)
    except PacketError:
        pass


_ATTR_TYPES = st.sampled_from(
    [
        0x0001,
        0x0006,
        0x0008,
        0x0009,
        0x000A,
        0x0020,
        0x0024,
        0x0025,
        0x8022,
        0x8028,
        0x8029,
        0x802A,
        0x0031,
        0xC057,
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, 0x3FFF),
    st.lists(st.tuples(_ATTR_TYPES, st.binary(max_size=24)), max_size=8),
)
def test_well_framed_random_attributes_raise_only_packet_error(
    msg_type: int, attrs: list[tuple[int, bytes]]
) -> None:
    body = b"".join(
        t.to_bytes(2, "big") + len(v).to_bytes(2, "big") + v + bytes(-len(v) & 3) for t, v in attrs
    )
    data = (
        msg_type.to_bytes(2, "big")
        + len(body).to_bytes(2, "big")
        + bytes.fromhex("2112a442")
        + bytes(range(12))
        + body
    )
    try:
        msg = stun.parse(data)
    except PacketError:
        return
    msg.verify_fingerprint()
    msg.verify_integrity(b"key")
    _ = msg.username_parts
