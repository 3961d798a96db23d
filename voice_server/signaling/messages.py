"""Signaling wire messages (protocol version 1), validated at the edge with pydantic.

Every message is a JSON object with ``v`` (protocol version) and ``type``. Client messages are
parsed by :func:`parse_client_message` into one of the ``Client*`` models (a discriminated union
on ``type``); anything else raises :class:`ProtocolError` carrying a stable error code.
Server messages are built with the ``Server*`` models and serialised by :func:`encode`.

The full exchange is documented in ``docs/signaling.md``. This module is pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from voice_server.signaling.errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 64 * 1024

# Bounds on client-supplied text, so a valid message cannot carry megabytes in one field.
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_DEVICE = r"^[A-Za-z0-9_.:-]{1,64}$"
_REQ_ID = Annotated[str, Field(max_length=64)]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1


# ---------------------------------------------------------------- client -> server


class ClientJoin(_Msg):
    """First message of a connection: authenticates and joins one channel.

    ``session_id`` is the id of a previous session of the same user and device: when it is
    still alive (within the grace period) the session is resumed rather than replaced.
    """

    type: Literal["join"]
    token: Annotated[str, Field(min_length=1, max_length=8192)]
    channel: Annotated[str, Field(pattern=_NAME)]
    device_id: Annotated[str, Field(pattern=_DEVICE)]
    session_id: Annotated[str | None, Field(max_length=64)] = None
    id: _REQ_ID | None = None
    #: ignored: a talker's level comes from the server's principal and channel only
    priority: Any = Field(default=None, exclude=True)


class ClientLeave(_Msg):
    type: Literal["leave"]
    id: _REQ_ID | None = None


class ClientAnswer(_Msg):
    """The participant's SDP answer to the server's ``offer``. ``revision`` echoes a
    renegotiation offer's (optional: without it the answer is for the latest offer)."""

    type: Literal["answer"]
    sdp: Annotated[str, Field(min_length=1, max_length=60000)]
    revision: Annotated[int, Field(ge=0, le=2**31)] | None = None
    id: _REQ_ID | None = None


_CHANNELS = Annotated[list[Annotated[str, Field(pattern=_NAME)]], Field(max_length=16)]


class ClientRoute(_Msg):
    """What this session talks into and hears from now on (each channel must be one the user
    may join). Hearing a channel the peer connection has no slots for brings a renegotiation
    ``offer``."""

    type: Literal["route"]
    sends: _CHANNELS
    hears: _CHANNELS
    id: _REQ_ID | None = None
    priority: Any = Field(default=None, exclude=True)  # ignored, as in join


_CONSOLE_CHANNELS = Annotated[
    list[Annotated[str, Field(pattern=_NAME)]], Field(min_length=1, max_length=8)
]
_SUB = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]


class ClientMonitor(_Msg):
    """A console hears these channels too (each one the user supervises; at most 8 heard in
    all). Answered with ``monitored`` and, when a channel needs slot m-lines, a renegotiation
    ``offer`` carrying the ``slots_map``."""

    type: Literal["monitor"]
    channels: _CONSOLE_CHANNELS
    id: _REQ_ID | None = None


class ClientUnmonitor(_Msg):
    """A console stops hearing these channels (their m-lines stay, unused)."""

    type: Literal["unmonitor"]
    channels: _CONSOLE_CHANNELS
    id: _REQ_ID | None = None


class ClientTalkTarget(_Msg):
    """What a console talks into: ``channels`` (one, or several: an all-call) or ``user`` (a
    direct talk to every connected device of one person); exactly one of the two."""

    type: Literal["talk_target"]
    #: at most 16 (a route's limit): an all-call may reach more channels than a console hears
    channels: _CHANNELS | None = None
    user: _SUB | None = None
    id: _REQ_ID | None = None


class ClientRefresh(_Msg):
    """A fresh token for the same user, sent before the current one expires."""

    type: Literal["refresh"]
    token: Annotated[str, Field(min_length=1, max_length=8192)]
    id: _REQ_ID | None = None


class ClientPing(_Msg):
    type: Literal["ping"]
    id: _REQ_ID | None = None


class Location(BaseModel):
    """Where the phone is (browser Geolocation, opt-in per device): shown to supervisors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy: Annotated[float, Field(ge=0, le=1_000_000, allow_inf_nan=False)] | None = None


class ClientEmergency(_Msg):
    """Raise an emergency in this session's channel (after the client's countdown) or cancel
    one's own open emergency. Answered ``emergency_update``; a second raise while one's own is
    open is refused ``emergency_open``."""

    type: Literal["emergency"]
    action: Literal["raise", "cancel"]
    location: Location | None = None
    id: _REQ_ID | None = None


class ClientIceRestart(_Msg):
    """The phone's network changed (``online``, a new connection type, a media stall): restart
    ICE on its own peer connection (there is no session field: only the sender's). Answered by
    ``offer {"renegotiate": true, "restart": true}``, or ``error`` ``ice_restart_too_often``."""

    type: Literal["ice_restart"]
    id: _REQ_ID | None = None


_MS = Annotated[float, Field(ge=0, le=60_000, allow_inf_nan=False)]
_RATIO = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class ClientStats(_Msg):
    """Network diagnostics, every ~5 s: the path media takes and how it fares. Shown to
    administrators, never trusted (signaling.diagnostics); no reply."""

    type: Literal["stats"]
    path: Literal["udp", "tcp", "turn-tls"]
    rtt_ms: _MS | None = None
    loss: _RATIO | None = None
    jitter_ms: _MS | None = None
    concealed_ratio: _RATIO | None = None
    id: _REQ_ID | None = None


ClientMessage = Annotated[
    ClientJoin
    | ClientLeave
    | ClientAnswer
    | ClientRefresh
    | ClientPing
    | ClientRoute
    | ClientStats
    | ClientMonitor
    | ClientUnmonitor
    | ClientTalkTarget
    | ClientEmergency
    | ClientIceRestart,
    Field(discriminator="type"),
]
CLIENT_TYPES = frozenset(
    {
        "join",
        "leave",
        "answer",
        "refresh",
        "ping",
        "route",
        "stats",
        "monitor",
        "unmonitor",
        "talk_target",
        "emergency",
        "ice_restart",
    }
)
_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# ---------------------------------------------------------------- server -> client


class Participant(BaseModel):
    """A participant as other participants see it. ``id`` is the session id."""

    model_config = ConfigDict(frozen=True)

    id: str
    sub: str
    name: str
    device_id: str
    talking: bool = False
    slot: int | None = None
    #: a console hearing this channel from elsewhere (its presence in a channel it monitors)
    monitoring: bool = False


class SlotEntry(BaseModel):
    """One slot m-line of a console's peer connection: which channel's slot it plays. The
    session's slot number (in its talk, duck and preempted events) is the mid's number."""

    model_config = ConfigDict(frozen=True)

    mid: str
    channel: str
    channel_slot: int


class ChannelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    display_name: str


class IceServer(BaseModel):
    """A TURN relay and this participant's time-limited credential for it (identity.turncreds)."""

    model_config = ConfigDict(frozen=True)

    urls: list[str]
    username: str
    credential: str


class ServerJoined(_Msg):
    type: Literal["joined"] = "joined"
    session_id: str
    resumed: bool
    channel: ChannelInfo
    you: Participant
    participants: list[Participant]
    grace_seconds: float
    token_expires_at: int
    id: str | None = None
    #: what this member may do in the channel: ``talker`` or ``listener`` (listen only)
    talk_right: Literal["talker", "listener"] = "talker"
    priority: int = 1  # this member's level (README, "Priority")
    #: TURN relays for the peer connection (none when the server has no ``turn_urls``)
    ice_servers: list[IceServer] = Field(default_factory=list)


class ServerOffer(_Msg):
    """An SDP offer. Plain: for a new peer connection (close the old one). With ``renegotiate``
    true: apply it to the existing one and answer with ``revision`` echoed."""

    type: Literal["offer"] = "offer"
    sdp: str
    renegotiate: bool = False
    revision: int | None = None
    #: a console's offers: which m-line plays which channel's slot (None for a phone)
    slots_map: list[SlotEntry] | None = None
    #: an ICE restart (``renegotiate`` too): new ICE credentials for the same peer connection
    restart: bool = False


class ServerRouted(_Msg):
    """The session's route as it now is (the answer to ``route``)."""

    type: Literal["routed"] = "routed"
    sends: list[str]
    hears: list[str]
    id: str | None = None


class ServerMonitored(_Msg):
    """A console's channels heard now, in m-line order, and its slot m-lines (the answer to
    ``monitor`` and ``unmonitor``)."""

    type: Literal["monitored"] = "monitored"
    channels: list[str]
    slots_map: list[SlotEntry]
    id: str | None = None


class ServerTalkTargetSet(_Msg):
    """A console's talk target now (the answer to ``talk_target``): the channels talked into,
    and for a direct talk the user; ``kind`` what its bursts are."""

    type: Literal["talk_target_set"] = "talk_target_set"
    channels: list[str]
    user: str | None = None
    kind: str = "speech"
    id: str | None = None


class ServerParticipantJoined(_Msg):
    type: Literal["participant_joined"] = "participant_joined"
    participant: Participant


class ServerParticipantLeft(_Msg):
    type: Literal["participant_left"] = "participant_left"
    participant: Participant
    reason: str


class ServerTalkStarted(_Msg):
    type: Literal["talk_started"] = "talk_started"
    speaker: Participant
    slot: int
    channel: str | None = None  # the channel whose slot it is
    priority: int = 1  # the talker's level (1 staff, 2 supervisor / all-call, 3 emergency)
    kind: str = "speech"  # speech | all_call | direct | announcement | emergency (talk.priority)


class ServerEmergencyUpdate(_Msg):
    """An emergency of this channel changed: ``state`` raised | acknowledged | resolved,
    ``by`` the user who changed it (the raiser when raised), ``subject`` whose emergency it is;
    ``window_s`` while the raiser's microphone is held open (raised only)."""

    type: Literal["emergency_update"] = "emergency_update"
    id: str
    state: str
    by: str
    subject: str = ""
    resolution: str | None = None
    window_s: float | None = None
    request_id: str | None = None


class ServerTalkStopped(_Msg):
    type: Literal["talk_stopped"] = "talk_stopped"
    speaker: Participant
    slot: int
    channel: str | None = None


class ServerPreempted(_Msg):
    """Sent to a talker whose slot a higher-level talker took (its audio is no longer
    forwarded but still reaches the call log; it gets a slot again when one frees)."""

    type: Literal["preempted"] = "preempted"
    slot: int | None  # None: a console's slot of a channel it does not hear
    channel: str
    by: Participant


class ServerDuck(_Msg):
    """Lower every slot but ``slot`` by ``db`` (negative) while a level >= 2 talker holds it;
    ``db`` 0 when it ends."""

    type: Literal["duck"] = "duck"
    db: int
    slot: int
    channel: str


class ServerTalkRight(_Msg):
    """This member's level or talk right in its channel changed during the session."""

    type: Literal["talk_right"] = "talk_right"
    talk_right: Literal["talker", "listener"]
    priority: int


class ServerSlotBusy(_Msg):
    """Sent to a talker who started speaking while every slot was taken."""

    type: Literal["slot_busy"] = "slot_busy"
    slots: int


class ServerTokenExpiring(_Msg):
    type: Literal["token_expiring"] = "token_expiring"
    expires_at: int


class ServerRefreshed(_Msg):
    type: Literal["refreshed"] = "refreshed"
    expires_at: int
    id: str | None = None


class ServerLeft(_Msg):
    """The session ended: answer to ``leave`` or the server's decision (``reason``)."""

    type: Literal["left"] = "left"
    reason: str
    id: str | None = None


class ServerDegraded(_Msg):
    """This node has lost the cluster (its Redis link is down longer than an owner lease, a
    partition) while ``channel`` spans nodes: the other side holds the channel now. Join again
    (a fresh join, after the back-off; through the reverse proxy, or the next configured node),
    where the channel is whole. A channel whose members are all on this node goes on here."""

    type: Literal["degraded"] = "degraded"
    channel: str
    reason: str = "partition"


class ServerMigrate(_Msg):
    """This node is being drained: join again elsewhere (``url``: a base URL of another node
    when one is known, else null: the same address after a back-off, where a reverse proxy sends
    the join to a node that takes it) before ``deadline_s`` has passed."""

    type: Literal["migrate"] = "migrate"
    url: str | None = None
    deadline_s: float
    reason: str = "drain"


class ServerPong(_Msg):
    type: Literal["pong"] = "pong"
    id: str | None = None
    server_time: float


class ServerError(_Msg):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    id: str | None = None
    fatal: bool = False


ServerMessage = (
    ServerJoined
    | ServerOffer
    | ServerRouted
    | ServerMonitored
    | ServerTalkTargetSet
    | ServerParticipantJoined
    | ServerParticipantLeft
    | ServerTalkStarted
    | ServerTalkStopped
    | ServerSlotBusy
    | ServerPreempted
    | ServerDuck
    | ServerTalkRight
    | ServerTokenExpiring
    | ServerRefreshed
    | ServerLeft
    | ServerMigrate
    | ServerDegraded
    | ServerPong
    | ServerEmergencyUpdate
    | ServerError
)


def encode(message: ServerMessage) -> str:
    """Serialise a server message to its JSON text (compact, UTF-8 kept as is)."""
    return message.model_dump_json(exclude_none=False)


def _request_id(raw: Any) -> str | None:
    if isinstance(raw, dict):
        rid = raw.get("id")
        if isinstance(rid, str) and len(rid) <= 64:
            return rid
    return None


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse and validate one client message; raise :class:`ProtocolError` on anything bad."""
    if len(text) > MAX_MESSAGE_BYTES:
        raise ProtocolError(ErrorCode.TOO_LARGE, "message larger than 64 KiB")
    try:
        raw = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "message is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "message must be a JSON object")
    rid = _request_id(raw)
    version = raw.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"protocol version must be {PROTOCOL_VERSION}",
            request_id=rid,
        )
    mtype = raw.get("type")
    if not isinstance(mtype, str) or mtype not in CLIENT_TYPES:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, "unknown message type", request_id=rid)
    if mtype == "join" and not raw.get("token"):
        raise ProtocolError(ErrorCode.TOKEN_MISSING, "join needs a token", request_id=rid)
    try:
        return _client_adapter.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != mtype) or "message"
        raise ProtocolError(
            ErrorCode.INVALID_FIELD, f"{where}: {first.get('msg', 'invalid')}", request_id=rid
        ) from None
