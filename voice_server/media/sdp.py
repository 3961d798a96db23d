"""The SDP contract between the server (offerer) and a participant (answerer).

RFC 8866 (SDP), RFC 3264 (offer/answer), RFC 8829 (JSEP), RFC 8839 (ICE attributes,
``a=ice-lite``), RFC 8843 (BUNDLE), RFC 8842 (``a=setup``/``a=fingerprint`` for DTLS),
RFC 5761 (``a=rtcp-mux``), RFC 7587 (Opus), RFC 6464 (audio level), RFC 8830 (``a=msid``).

The server always makes the offer: m-line (mid) 0 is the participant's microphone
(``recvonly`` here), mids 1..N are the listening slots (``sendonly``, each with a fixed
announced SSRC). Everything is bundled on the server's single UDP port; the server is ICE-lite
and, as the answerer must answer ``a=setup:active``, the DTLS server. Both Chromium and aiortc
keep the offered payload type (111) and extension id (1) in their answers.

When the server also listens on TCP, each m-line carries a second host candidate, a passive
ICE-TCP one (RFC 6544, ``tcptype passive``, RFC 4571 framing) of lower priority: a browser on a
network that drops UDP connects to it; aiortc has no ICE-TCP and ignores it.

The answer is client input (at most 60,000 characters): :func:`parse_answer` bounds line
length, line and m-line counts and raises :class:`SdpError` with a readable message on anything
it cannot use.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass

from voice_server.media.red import RED_PT

__all__ = [
    "Answer",
    "IceCredentials",
    "MediaAnswer",
    "OfferParams",
    "SdpError",
    "build_offer",
    "host_priority",
    "new_ice_credentials",
    "new_slot_ssrcs",
    "parse_answer",
]

OPUS_PT = 111
AUDIO_LEVEL_ID = 1
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
PROTO = "UDP/TLS/RTP/SAVPF"
OPUS_FMTP = "minptime=10;useinbandfec=1;usedtx=1;stereo=0;sprop-stereo=0"
# The UDP host candidate's priority: type preference 120 (below the 126 browsers give their own
# host candidates, above server-reflexive 100 and ICE-TCP 90), local preference the ICE generation
# (restarts so far), component 1. Below the browser's host candidates, ours is the smaller term of
# every host pair's priority (RFC 8445 6.1.2.3: 2^32·min(G, D) + 2·max(G, D) + …), so after an
# ICE restart each new pair outranks every pair of the generation before (and within one
# generation the browser's own order is kept): Chromium then moves to the first new pair that
# works (a second network it already knew) at once, not after its old pair has heard nothing for
# 2.5 s plus its 1 s switching delay.
HOST_TYPE_PREFERENCE = 120


def host_priority(generation: int = 0) -> int:
    """The UDP host candidate's priority for an offer of ICE generation ``generation``."""
    return (HOST_TYPE_PREFERENCE << 24) | (min(max(generation, 0), 0xFFFF) << 8) | 255


HOST_PRIORITY = host_priority(0)
# RFC 6544 4.2: a TCP host candidate, below UDP (type pref 90; local pref: direction passive 2
# << 13 | other 8191), component 1
TCP_HOST_PRIORITY = (90 << 24) | (((2 << 13) | 8191) << 8) | 255

MAX_SDP_LENGTH = 60000  # a console's answer: up to MAX_MEDIA m-lines (~500 bytes each)
MAX_LINE_LENGTH = 1024
MAX_LINES = 3000
MAX_MEDIA = 64  # the microphone and slot m-lines; a console past it gets a new peer connection
DIRECTIONS = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

_ICE_CHARS = string.ascii_letters + string.digits + "+/"
_ICE_CHAR_RE = re.compile(r"[A-Za-z0-9+/]+")
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]{1,64}")
_FINGERPRINT_RE = re.compile(r"[0-9A-F]{2}(?::[0-9A-F]{2}){31}")


class SdpError(ValueError):
    """The SDP answer cannot be used; the message says why (safe to show to the client)."""


@dataclass(frozen=True, slots=True)
class IceCredentials:
    ufrag: str
    pwd: str


def new_ice_credentials() -> IceCredentials:
    """Random ICE credentials: 8-char ufrag (48 bits), 24-char pwd (144 bits), RFC 8839."""
    return IceCredentials(
        ufrag="".join(secrets.choice(_ICE_CHARS) for _ in range(8)),
        pwd="".join(secrets.choice(_ICE_CHARS) for _ in range(24)),
    )


def new_slot_ssrcs(slots: int = 3) -> tuple[int, ...]:
    """``slots`` distinct random non-zero SSRCs."""
    out: list[int] = []
    while len(out) < slots:
        ssrc = secrets.randbits(32)
        if ssrc and ssrc not in out:
            out.append(ssrc)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class OfferParams:
    """Everything the server's offer depends on."""

    session_id: int
    session_version: int
    ice_ufrag: str
    ice_pwd: str
    #: the server certificate's SHA-256 fingerprint, ``"AB:CD:..."``
    fingerprint: str
    #: address and port of the media socket, announced as the only host candidate
    ip: str
    port: int
    #: one fixed SSRC per listening slot (mids 1..N)
    slot_ssrcs: tuple[int, ...]
    cname: str
    #: the ICE-TCP passive candidate's port (same address), None when not listening on TCP
    tcp_port: int | None = None
    slots: int = 3
    payload_type: int = OPUS_PT
    #: audio RED (RFC 2198) of Opus offered first on every m-line; None offers Opus alone
    red_payload_type: int | None = RED_PT
    audio_level_id: int = AUDIO_LEVEL_ID
    max_average_bitrate: int = 32000
    #: ``a=ptime`` (packet duration hint, the Opus default 20 ms); None leaves it out
    ptime: int | None = 20
    #: msid of slot i is ``"<prefix><i> <prefix><i>-audio"``
    stream_prefix: str = "slot"
    #: ICE restarts of the transport so far: raises the UDP candidate's priority (host_priority)
    ice_generation: int = 0

    def validate(self) -> None:
        """Raise ValueError if the parameters cannot make a valid offer."""
        if len(self.slot_ssrcs) != self.slots:  # no slot at all: a route that hears nothing
            raise ValueError("need one SSRC per slot")
        if len(set(self.slot_ssrcs)) != self.slots or not all(
            0 < s <= 0xFFFFFFFF for s in self.slot_ssrcs
        ):
            raise ValueError("slot SSRCs must be distinct 32-bit non-zero values")
        if not (4 <= len(self.ice_ufrag) <= 256 and _ICE_CHAR_RE.fullmatch(self.ice_ufrag)):
            raise ValueError("ice ufrag must be 4-256 ice-chars")
        if not (22 <= len(self.ice_pwd) <= 256 and _ICE_CHAR_RE.fullmatch(self.ice_pwd)):
            raise ValueError("ice pwd must be 22-256 ice-chars")
        if not _FINGERPRINT_RE.fullmatch(self.fingerprint):
            raise ValueError("fingerprint must be 32 upper-case hex pairs")
        if self.tcp_port is not None and not 1 <= self.tcp_port <= 65535:
            raise ValueError("bad TCP port")
        if not 1 <= self.port <= 65535 or not 96 <= self.payload_type <= 127:
            raise ValueError("bad port or payload type")
        if not 1 <= self.audio_level_id <= 14:
            raise ValueError("audio-level id must be 1-14 (one-byte header form)")
        if not _TOKEN_RE.fullmatch(self.cname) or not _TOKEN_RE.fullmatch(
            self.stream_prefix + "0-audio"
        ):
            raise ValueError("cname and stream prefix must be short tokens")
        if any(c in self.ip for c in " \r\n") or not self.ip:
            raise ValueError("bad ip")


def build_offer(params: OfferParams) -> str:
    """The server's offer (CRLF line endings) for one participant; see the module docstring."""
    params.validate()
    p = params
    family = "IP6" if ":" in p.ip else "IP4"
    mids = " ".join(str(i) for i in range(p.slots + 1))
    lines = [
        "v=0",
        f"o=- {p.session_id} {p.session_version} IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=ice-lite",
        f"a=group:BUNDLE {mids}",
        "a=msid-semantic: WMS *",
    ]
    pt = p.payload_type
    red = p.red_payload_type
    formats = f"{pt}" if red is None else f"{red} {pt}"
    for mid in range(p.slots + 1):
        lines += [
            f"m=audio {p.port} {PROTO} {formats}",
            f"c=IN {family} {p.ip}",
            f"a=rtcp:{p.port} IN {family} {p.ip}",
            f"a=ice-ufrag:{p.ice_ufrag}",
            f"a=ice-pwd:{p.ice_pwd}",
            f"a=fingerprint:sha-256 {p.fingerprint}",
            "a=setup:actpass",
            f"a=mid:{mid}",
            f"a=extmap:{p.audio_level_id} {AUDIO_LEVEL_URI}",
            "a=recvonly" if mid == 0 else "a=sendonly",
            "a=rtcp-mux",
            f"a=rtpmap:{pt} opus/48000/2",
            f"a=fmtp:{pt} {OPUS_FMTP};maxaveragebitrate={p.max_average_bitrate}",
        ]
        if red is not None:  # first: Chromium sends the first format of the list
            lines += [f"a=rtpmap:{red} red/48000/2", f"a=fmtp:{red} {pt}/{pt}"]
        if p.ptime is not None:
            lines.append(f"a=ptime:{p.ptime}")
        if mid > 0:
            ssrc = p.slot_ssrcs[mid - 1]
            msid = f"{p.stream_prefix}{mid} {p.stream_prefix}{mid}-audio"
            lines += [
                f"a=msid:{msid}",
                f"a=ssrc:{ssrc} cname:{p.cname}",
                f"a=ssrc:{ssrc} msid:{msid}",
            ]
        priority = host_priority(p.ice_generation)
        lines.append(f"a=candidate:1 1 udp {priority} {p.ip} {p.port} typ host")
        if p.tcp_port is not None:
            lines.append(
                f"a=candidate:2 1 tcp {TCP_HOST_PRIORITY} {p.ip} {p.tcp_port} typ host"
                " tcptype passive"
            )
        lines.append("a=end-of-candidates")
    return "\r\n".join(lines) + "\r\n"


# ---------------------------------------------------------------------------------------------
# the answer


@dataclass(frozen=True, slots=True)
class MediaAnswer:
    """What the answer says about one m-line."""

    mid: str
    #: False if the answerer rejected the m-line (port 0)
    accepted: bool
    #: the answerer's direction: for mid 0 ``sendonly``/``sendrecv`` means it will talk
    direction: str
    #: the accepted Opus payload type, None if rejected
    payload_type: int | None
    #: id of the audio-level extension if the answer kept it
    audio_level_id: int | None
    #: SSRCs announced with ``a=ssrc`` (the participant's microphone on mid 0)
    ssrcs: tuple[int, ...]
    #: the answer kept audio RED (``red/48000`` on the offered RED payload type)
    red: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A parsed, checked SDP answer."""

    ice_ufrag: str
    ice_pwd: str
    fingerprint_algorithm: str
    #: upper-case ``"AB:CD:..."``, compare with ``DtlsServer.verify_fingerprint``
    fingerprint: str
    setup: str
    media: tuple[MediaAnswer, ...]

    @property
    def can_talk(self) -> bool:
        """True if the participant sends on mid 0 (its microphone)."""
        return self.media[0].accepted and self.media[0].direction in ("sendonly", "sendrecv")

    @property
    def payload_type(self) -> int | None:
        return self.media[0].payload_type

    @property
    def red_heard(self) -> bool:
        """The participant accepts audio RED on its listening slots (every accepted one)."""
        slots = [m for m in self.media[1:] if m.accepted]
        return bool(slots) and all(m.red for m in slots)

    @property
    def audio_level_id(self) -> int | None:
        """Audio-level extension id on the participant's incoming stream (mid 0)."""
        return self.media[0].audio_level_id


@dataclass(slots=True)
class _Section:
    """Raw lines of the session part or of one m-section."""

    m: list[str]
    attrs: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for key, value in self.attrs:
            if key == name:
                return value
        return None

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.attrs if key == name]


def _split(sdp: str, max_media: int) -> tuple[_Section, list[_Section]]:
    if len(sdp) > MAX_SDP_LENGTH:
        raise SdpError(f"SDP longer than {MAX_SDP_LENGTH} characters")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_LINES:
        raise SdpError(f"SDP has more than {MAX_LINES} lines")
    session = _Section([], [])
    media: list[_Section] = []
    current = session
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        if len(line) > MAX_LINE_LENGTH:
            raise SdpError(f"SDP line {number} longer than {MAX_LINE_LENGTH} characters")
        if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise SdpError(f"SDP line {number} is not '<type>=<value>'")
        kind, value = line[0], line[2:]
        if kind == "m":
            if len(media) >= max_media:
                raise SdpError(f"answer has more m-lines than the offer ({max_media})")
            current = _Section(value.split(), [])
            media.append(current)
        elif kind == "a":
            name, _, attr_value = value.partition(":")
            current.attrs.append((name, attr_value.strip()))
        elif kind == "v" and value != "0":
            raise SdpError("SDP version must be 0")
    return session, media


def _int(text: str, what: str, low: int, high: int) -> int:
    if not text.isdigit() or len(text) > 10:
        raise SdpError(f"bad {what}: {text[:32]!r}")
    value = int(text)
    if not low <= value <= high:
        raise SdpError(f"{what} out of range: {value}")
    return value


def _media(section: _Section, index: int, payload_type: int) -> MediaAnswer:
    m = section.m
    if len(m) < 4 or m[0] != "audio":
        raise SdpError(f"m-line {index} must be 'audio <port> <proto> <formats>'")
    port = _int(m[1], f"port of m-line {index}", 0, 65535)
    mid = section.get("mid")
    if mid != str(index):
        raise SdpError(f"m-line {index} must have a=mid:{index}")
    if port == 0:
        return MediaAnswer(mid, False, "inactive", None, None, ())
    if m[2] != PROTO:
        raise SdpError(f"m-line {index} must use {PROTO}")
    if str(payload_type) not in m[3:]:
        raise SdpError(f"m-line {index} does not accept payload type {payload_type} (opus)")
    rtpmap = next(
        (v for v in section.all("rtpmap") if v.split(" ", 1)[0] == str(payload_type)), None
    )
    if rtpmap is None or not rtpmap.partition(" ")[2].lower().startswith("opus/48000"):
        raise SdpError(f"m-line {index}: payload type {payload_type} is not opus/48000")
    directions = [key for key, _ in section.attrs if key in DIRECTIONS]
    if len(directions) > 1:
        raise SdpError(f"m-line {index} has more than one direction")
    direction = directions[0] if directions else "sendrecv"
    if section.get("rtcp-mux") is None:
        raise SdpError(f"m-line {index} must accept rtcp-mux")
    level_id: int | None = None
    for ext in section.all("extmap"):
        ident, _, rest = ext.partition(" ")
        if rest.split(" ", 1)[0] == AUDIO_LEVEL_URI:
            level_id = _int(ident.partition("/")[0], "extmap id", 1, 255)
    ssrcs: list[int] = []
    for line in section.all("ssrc"):
        ssrc = _int(line.split(" ", 1)[0], "ssrc", 0, 0xFFFFFFFF)
        if ssrc not in ssrcs:
            ssrcs.append(ssrc)
    red = str(RED_PT) in m[3:] and any(
        v.split(" ", 1)[0] == str(RED_PT) and v.partition(" ")[2].lower().startswith("red/48000")
        for v in section.all("rtpmap")
    )
    return MediaAnswer(mid, True, direction, payload_type, level_id, tuple(ssrcs), red)


def parse_answer(sdp: str, offer_mids: int, *, payload_type: int = OPUS_PT) -> Answer:
    """Parse and check the participant's answer to an offer with ``offer_mids`` m-lines.

    Requires: the same number of m-lines with mids 0..offer_mids-1 in order; ICE ufrag/pwd
    (session or m-line level); a sha-256 fingerprint; ``a=setup:active``; every accepted
    m-line bundled, with rtcp-mux and Opus on ``payload_type``. Raises :class:`SdpError`.
    """
    if not isinstance(sdp, str):
        raise SdpError("SDP must be text")
    if not 1 <= offer_mids <= MAX_MEDIA:
        raise ValueError(f"offer_mids must be 1-{MAX_MEDIA}")
    session, sections = _split(sdp, offer_mids)
    if len(sections) != offer_mids:
        raise SdpError(f"answer has {len(sections)} m-lines, the offer had {offer_mids}")
    media = tuple(_media(s, i, payload_type) for i, s in enumerate(sections))
    if not media[0].accepted:
        raise SdpError("m-line 0 (the first, bundle-tagged m-line) was rejected")
    first = sections[0]

    def pick(name: str) -> str:
        value = first.get(name) or session.get(name)
        if not value:
            raise SdpError(f"answer has no a={name}")
        return value

    ufrag, pwd = pick("ice-ufrag"), pick("ice-pwd")
    if not (4 <= len(ufrag) <= 256 and _ICE_CHAR_RE.fullmatch(ufrag)):
        raise SdpError("ice-ufrag must be 4-256 ice-chars")
    if not (22 <= len(pwd) <= 256 and _ICE_CHAR_RE.fullmatch(pwd)):
        raise SdpError("ice-pwd must be 22-256 ice-chars")

    setup = pick("setup")
    if setup != "active":
        raise SdpError(f"a=setup must be 'active' (the server is the DTLS server), got {setup!r}")

    fingerprint: str | None = None
    for value in first.all("fingerprint") + session.all("fingerprint"):
        algorithm, _, digest = value.partition(" ")
        if algorithm.lower() == "sha-256":
            fingerprint = digest.strip().upper()
            break
    if fingerprint is None:
        raise SdpError("answer has no a=fingerprint:sha-256")
    if not _FINGERPRINT_RE.fullmatch(fingerprint):
        raise SdpError("a=fingerprint:sha-256 value is malformed")

    bundled: set[str] = set()
    for group in session.all("group"):
        parts = group.split()
        if parts and parts[0] == "BUNDLE":
            bundled.update(parts[1:])
    missing = [m.mid for m in media if m.accepted and m.mid not in bundled]
    if missing:
        raise SdpError(f"accepted m-lines must be bundled (missing: {' '.join(missing)})")

    return Answer(ufrag, pwd, "sha-256", fingerprint, setup, media)
