"""The simulated participant's side of the SDP contract: read the server's offer, answer it.

The server makes the offer (see :mod:`voice_server.media.sdp`): ``a=ice-lite``, one host
candidate on its single UDP port, mid 0 is the participant's microphone (``recvonly`` on the
server), mids 1..N are the listening slots (``sendonly``, one fixed ``a=ssrc`` each). The answer
built here is the smallest one the server's :func:`~voice_server.media.sdp.parse_answer`
accepts: our ICE credentials and certificate fingerprint, ``a=setup:active`` (we are the DTLS
client), everything bundled with ``a=rtcp-mux``, the offered Opus payload type and audio-level
extension id kept, mid 0 ``sendonly`` with our SSRC, the slots ``recvonly``.

Pure module: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice_server.media.sdp import AUDIO_LEVEL_URI, PROTO, IceCredentials

__all__ = ["OfferError", "OfferInfo", "build_answer", "parse_offer"]


class OfferError(ValueError):
    """The server's offer lacks something a simulated participant needs."""


@dataclass(frozen=True, slots=True)
class OfferInfo:
    """What a simulated participant needs from the server's offer."""

    ice_ufrag: str
    ice_pwd: str
    #: upper-case ``"AB:CD:..."`` SHA-256 of the server's certificate
    fingerprint: str
    #: the host candidate (the server's media socket)
    ip: str
    port: int
    #: every mid, in m-line order (``"0"``, ``"1"``, ...)
    mids: tuple[str, ...]
    payload_type: int
    audio_level_id: int | None
    #: the announced SSRC of each slot (mids 1..N), in mid order
    slot_ssrcs: tuple[int, ...]
    ice_lite: bool


def parse_offer(sdp: str) -> OfferInfo:
    """Read the server's offer; raise :class:`OfferError` if a needed attribute is missing."""
    session: dict[str, str] = {}
    media: list[dict[str, list[str]]] = []
    formats: list[list[str]] = []
    ice_lite = False
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            media.append({})
            formats.append(line[2:].split()[3:])
            continue
        if not line.startswith("a="):
            continue
        name, _, value = line[2:].partition(":")
        if not media:
            if name == "ice-lite":
                ice_lite = True
            session.setdefault(name, value)
        else:
            media[-1].setdefault(name, []).append(value)
    if not media:
        raise OfferError("offer has no m-line")

    first = media[0]

    def pick(name: str) -> str:
        values = first.get(name) or ([session[name]] if name in session else [])
        if not values or not values[0]:
            raise OfferError(f"offer has no a={name}")
        return values[0]

    fingerprint: str | None = None
    for value in [*first.get("fingerprint", []), session.get("fingerprint", "")]:
        algorithm, _, digest = value.partition(" ")
        if algorithm.lower() == "sha-256":
            fingerprint = digest.strip().upper()
            break
    if fingerprint is None:
        raise OfferError("offer has no a=fingerprint:sha-256")

    candidate: tuple[str, int] | None = None
    for value in first.get("candidate", []):
        parts = value.split()
        if len(parts) >= 8 and parts[2].lower() == "udp" and parts[7] == "host":
            candidate = (parts[4], int(parts[5]))
            break
    if candidate is None:
        raise OfferError("offer has no UDP host candidate")

    if not formats[0]:
        raise OfferError("offer's first m-line has no payload type")
    opus = [
        v.split(" ", 1)[0] for v in first.get("rtpmap", []) if " opus/48000" in v.lower()
    ]  # not the first format: audio RED comes first
    payload_type = int(opus[0] if opus and opus[0] in formats[0] else formats[0][0])
    level_id: int | None = None
    for ext in first.get("extmap", []):
        ident, _, uri = ext.partition(" ")
        if uri.split(" ", 1)[0] == AUDIO_LEVEL_URI:
            level_id = int(ident.partition("/")[0])

    mids: list[str] = []
    slot_ssrcs: list[int] = []
    for index, section in enumerate(media):
        mid = (section.get("mid") or [str(index)])[0]
        mids.append(mid)
        if index > 0:
            ssrcs = section.get("ssrc", [])
            if not ssrcs:
                raise OfferError(f"slot m-line {mid} announces no SSRC")
            slot_ssrcs.append(int(ssrcs[0].split(" ", 1)[0]))
    return OfferInfo(
        ice_ufrag=pick("ice-ufrag"),
        ice_pwd=pick("ice-pwd"),
        fingerprint=fingerprint,
        ip=candidate[0],
        port=candidate[1],
        mids=tuple(mids),
        payload_type=payload_type,
        audio_level_id=level_id,
        slot_ssrcs=tuple(slot_ssrcs),
        ice_lite=ice_lite,
    )


def build_answer(
    offer: OfferInfo,
    *,
    credentials: IceCredentials,
    fingerprint: str,
    ssrc: int,
    cname: str = "x",
    talk: bool = True,
) -> str:
    """A minimal answer (CRLF line endings) to ``offer``.

    ``fingerprint`` is our certificate's SHA-256 (``"AB:CD:..."``); ``ssrc`` the SSRC of our
    microphone stream on mid 0, announced with ``a=ssrc``. ``talk=False`` answers mid 0
    ``inactive`` (a participant that will never send).
    """
    pt = offer.payload_type
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        f"a=group:BUNDLE {' '.join(offer.mids)}",
        "a=msid-semantic: WMS *",
    ]
    for index, mid in enumerate(offer.mids):
        lines += [
            f"m=audio 9 {PROTO} {pt}",
            "c=IN IP4 0.0.0.0",
            f"a=ice-ufrag:{credentials.ufrag}",
            f"a=ice-pwd:{credentials.pwd}",
            f"a=fingerprint:sha-256 {fingerprint}",
            "a=setup:active",
            f"a=mid:{mid}",
        ]
        if offer.audio_level_id is not None:
            lines.append(f"a=extmap:{offer.audio_level_id} {AUDIO_LEVEL_URI}")
        if index == 0:
            lines.append("a=sendonly" if talk else "a=inactive")
        else:
            lines.append("a=recvonly")
        lines += [
            "a=rtcp-mux",
            f"a=rtpmap:{pt} opus/48000/2",
            f"a=fmtp:{pt} minptime=10;useinbandfec=1;usedtx=1",
        ]
        if index == 0 and talk:
            lines.append(f"a=ssrc:{ssrc} cname:{cname}")
    return "\r\n".join(lines) + "\r\n"
