"""The dispatcher console's rules (pure): what a console hears and talks into.

A console is a signaling session of a supervisor (or an admin) that hears several channels on
one peer connection (``monitor`` / ``unmonitor``) and talks into a chosen target
(``talk_target``): one channel, several (an all-call), or one person on every connected device
(a direct talk). Its route is built here from that state; the hub applies it like any route.

Slot numbers: a console's peer connection has the microphone (mid 0) and then one block of slot
m-lines per channel heard (``media.negotiation``); the *session slot* of a channel's slot ``s``
is the mid of its m-line, ``offset + s``. Talk, duck and preempted events sent to a console carry
session slots (and the channel); :func:`slots_map` tells the console which mid plays which
channel's slot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from voice_server.identity.principal import Principal, UserRecord
from voice_server.identity.tokens import ALL_CHANNELS, Role
from voice_server.media.route import Route
from voice_server.media.sdp import MAX_MEDIA
from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.messages import SlotEntry
from voice_server.talk.priority import Kind

__all__ = [
    "MAX_HEARD",
    "Console",
    "Supervision",
    "Target",
    "console_route",
    "monitor",
    "session_slot",
    "slots_map",
    "supervision",
    "too_many_mlines",
    "unmonitor",
]

#: channels one console hears at most (its own included)
MAX_HEARD = 8

Block = tuple[str, tuple[int, ...]]


@dataclass(frozen=True, slots=True)
class Supervision:
    """The channels a user supervises (their call log, live view and console)."""

    names: frozenset[str] = frozenset()
    everything: bool = False

    def __contains__(self, channel: object) -> bool:
        return self.everything or channel in self.names


def supervision(principal: Principal, record: UserRecord | None) -> Supervision:
    """With accounts: the channels the directory says the user supervises (staff: none),
    narrowed by the token's channels. Token only: a supervisor or admin token supervises the
    channels it covers."""
    if principal.role.rank < Role.SUPERVISOR.rank:
        return Supervision()
    if record is None:
        return Supervision(principal.channels, principal.all_channels)
    rec_all = ALL_CHANNELS in record.supervised
    rec = frozenset(c for c in record.supervised if c != ALL_CHANNELS)
    if principal.all_channels:
        return Supervision(rec, rec_all)
    return Supervision(principal.channels if rec_all else rec & principal.channels)


def check_supervised(
    channels: Iterable[str], supervised: Supervision, request_id: str | None
) -> None:
    refused = [c for c in channels if c not in supervised]
    if refused:
        raise ProtocolError(
            ErrorCode.CHANNEL_NOT_SUPERVISED,
            f"you do not supervise: {', '.join(sorted(set(refused)))}",
            request_id=request_id,
        )


@dataclass(frozen=True, slots=True)
class Target:
    """What a console talks into: channels, and for a direct talk the user and the session ids
    of their devices (the route's listener filter)."""

    channels: tuple[str, ...]
    user: str | None = None
    sessions: frozenset[str] | None = None

    @property
    def kind(self) -> Kind:
        if self.user is not None:
            return Kind.DIRECT
        return Kind.ALL_CALL if len(self.channels) > 1 else Kind.SPEECH


@dataclass(frozen=True, slots=True)
class Console:
    """A console's state: the channel it joined, the others it hears (in the order added: the
    order of its slot m-line blocks) and its talk target (None: its own channel)."""

    channel: str
    monitored: tuple[str, ...] = ()
    target: Target | None = None

    @property
    def heard(self) -> tuple[str, ...]:
        return (self.channel, *self.monitored)


def monitor(console: Console, channels: Iterable[str], request_id: str | None) -> Console:
    """The console hearing ``channels`` too (already heard ones are no change)."""
    added = list(console.monitored)
    for c in channels:
        if c != console.channel and c not in added:
            added.append(c)
    if 1 + len(added) > MAX_HEARD:
        raise ProtocolError(
            ErrorCode.TOO_MANY_CHANNELS,
            f"a console hears at most {MAX_HEARD} channels",
            request_id=request_id,
        )
    return Console(console.channel, tuple(added), console.target)


def unmonitor(console: Console, channels: Iterable[str], request_id: str | None) -> Console:
    """The console no longer hearing ``channels`` (its own channel stays: leave to stop)."""
    drop = set(channels)
    if console.channel in drop:
        raise ProtocolError(
            ErrorCode.INVALID_FIELD,
            "a console always hears the channel it joined (leave to stop hearing it)",
            request_id=request_id,
        )
    return Console(
        console.channel, tuple(c for c in console.monitored if c not in drop), console.target
    )


def direct_target(user: str, sessions: Mapping[str, str], request_id: str | None) -> Target:
    """A direct talk to ``user``: ``sessions`` maps each of their live sessions (in channels the
    console's user supervises) to its channel; none is ``target_offline``."""
    if not sessions:
        raise ProtocolError(
            ErrorCode.TARGET_OFFLINE,
            "that person has no connected device in your channels",
            request_id=request_id,
        )
    channels = tuple(sorted(set(sessions.values())))
    return Target(channels, user, frozenset(sessions))


def channel_target(channels: list[str], request_id: str | None) -> Target:
    unique = tuple(dict.fromkeys(channels))
    if not unique:
        raise ProtocolError(
            ErrorCode.EMPTY_TARGET, "talk into at least one channel", request_id=request_id
        )
    return Target(unique)


def console_route(console: Console, level: int, listener: bool) -> Route:
    """The route of a console: it hears its channels, talks into its target (its own channel by
    default; nothing when it may only listen there). An all-call is at least level 2."""
    target = console.target or Target((console.channel,))
    sends = () if listener and target.channels == (console.channel,) else target.channels
    if target.kind is Kind.ALL_CALL:
        level = max(level, 2)
    return Route(sends, console.heard, target.sessions, level)


def too_many_mlines(blocks: tuple[Block, ...]) -> bool:
    """An offer with these blocks would pass the SDP limit on m-lines (``MAX_MEDIA``)."""
    return 1 + sum(len(ssrcs) for _, ssrcs in blocks) > MAX_MEDIA


def slots_map(blocks: tuple[Block, ...]) -> list[SlotEntry]:
    """Each slot m-line of a console's peer connection: its mid, channel and channel slot."""
    out: list[SlotEntry] = []
    mid = 1
    for channel, ssrcs in blocks:
        for s in range(1, len(ssrcs) + 1):
            out.append(SlotEntry(mid=str(mid), channel=channel, channel_slot=s))
            mid += 1
    return out


def session_slot(
    blocks: tuple[Block, ...], channel: str, slot: int, heard: tuple[str, ...] = ()
) -> int | None:
    """The session slot (mid) of ``channel``'s slot ``slot``: in its latest block (a channel
    whose slot streams were renewed has a newer block; the older one is unused); for a channel
    of ``heard`` with no block yet, where the next offer appends it (before the first answer no
    renegotiation is offered yet); None when the peer connection will have no m-line for it."""
    offset = 0
    found: int | None = None
    names = set()
    for name, ssrcs in blocks:
        names.add(name)
        if name == channel and 1 <= slot <= len(ssrcs):
            found = offset + slot
        offset += len(ssrcs)
    if found is not None or not blocks:
        return found
    per_block = len(blocks[0][1])
    for name in heard:
        if name in names:
            continue
        if name == channel:
            return offset + slot if 1 <= slot <= per_block else None
        offset += per_block
    return None
