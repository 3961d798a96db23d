"""The signaling hub: sessions, their connections, broadcasts, and the link to the media plane.

The hub owns the session registry and one reaper task (grace periods and token expiry, checked
once a second). Connections are written to through bounded queues: a client too slow to read
its messages is disconnected (it can resume) rather than slowing anyone else down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from voice_server.identity.principal import (
    DirectoryRefusal,
    Principal,
    UserDirectory,
    UserRecord,
    effective_principal,
    lookup_all,
    still_allowed,
)
from voice_server.identity.tokens import Audience, TokenError, verify_token
from voice_server.identity.turncreds import TurnCredentials
from voice_server.media.route import Route
from voice_server.metrics import SignalingCounters
from voice_server.signaling import console as consoles
from voice_server.signaling.admission import ClusterPort
from voice_server.signaling.diagnostics import Diagnostics, Report
from voice_server.signaling.emergency import EmergencyDesk
from voice_server.signaling.errors import ErrorCode, ProtocolError
from voice_server.signaling.messages import (
    ChannelInfo,
    ClientJoin,
    ClientRefresh,
    ClientRoute,
    ClientStats,
    IceServer,
    Participant,
    ServerDegraded,
    ServerDuck,
    ServerError,
    ServerJoined,
    ServerLeft,
    ServerMessage,
    ServerMigrate,
    ServerMonitored,
    ServerOffer,
    ServerParticipantJoined,
    ServerParticipantLeft,
    ServerPreempted,
    ServerRefreshed,
    ServerRouted,
    ServerSlotBusy,
    ServerTalkRight,
    ServerTalkStarted,
    ServerTalkStopped,
    ServerTalkTargetSet,
    ServerTokenExpiring,
    encode,
)
from voice_server.signaling.remote_talk import RemotePeople, TalkOut, parse_relayed
from voice_server.signaling.sessions import Session, SessionRegistry, SessionState
from voice_server.store.channels import Channel, ChannelStore
from voice_server.talk import priority as talk_priority

log = logging.getLogger(__name__)

_TOKEN_CODES = {
    "invalid": ErrorCode.TOKEN_INVALID,
    "expired": ErrorCode.TOKEN_EXPIRED,
    "audience": ErrorCode.TOKEN_AUDIENCE,
}

_REFUSAL_CODES = {"disabled": ErrorCode.USER_DISABLED, "unknown": ErrorCode.USER_UNKNOWN}

# WebSocket close codes (documented in docs/signaling.md)
#: a session's ICE restarts: at most one per this many seconds (a flapping network, a loop)
ICE_RESTART_MIN_SECONDS = 3.0
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_RESTART = 1012
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TIMEOUT = 4408
CLOSE_REPLACED = 4409
CLOSE_SLOW = 4429


class Outbox(Protocol):
    """What the hub needs of a connection: queue a message or close it. Never blocks."""

    def send(self, text: str) -> bool: ...

    def close(self, code: int, reason: str = "") -> None: ...


class Reoffer(Protocol):
    """A renegotiation offer for a live peer connection."""

    @property
    def sdp(self) -> str: ...

    @property
    def revision(self) -> int: ...


class MediaPort(Protocol):
    """The media plane as the hub sees it: session ids and routes, no signaling sessions."""

    def open(self, session_id: str, route: Route) -> str:
        """Create the session's transport for ``route``; return the SDP offer."""
        ...

    def answer(self, session_id: str, sdp: str, revision: int | None = None) -> Reoffer | None:
        """Apply the participant's SDP answer; raise ValueError when it is unusable. A stale or
        mismatched renegotiation answer is ignored (and counted) by the plane. Returns a
        renegotiation offer to send when the route changed meanwhile."""
        ...

    def set_route(self, session_id: str, route: Route) -> Reoffer | None:
        """Change the session's route now; a renegotiation offer when it needs new m-lines."""
        ...

    def ice_restart(self, session_id: str) -> Reoffer:
        """New ICE credentials on the session's transport; raise ValueError without one."""
        ...

    def close(self, session_id: str) -> None: ...

    def has_transport(self, session_id: str) -> bool: ...

    def route_of(self, session_id: str) -> Route | None:
        """The route of a session or a server-side source, as placed."""
        ...

    def blocks(self, session_id: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The session's slot m-lines, channel by channel (the offer out, else answered)."""
        ...


@dataclass(frozen=True, slots=True)
class Verified:
    principal: Principal
    channel: Channel


def participant(session: Session, *, monitoring: bool = False) -> Participant:
    return Participant(
        id=session.id,
        sub=session.sub,
        name=session.name,
        device_id=session.device_id,
        talking=session.talking_slot is not None and not monitoring,
        slot=None if monitoring else session.talking_slot,
        monitoring=monitoring,
    )


class Hub:
    def __init__(
        self,
        *,
        key: bytes,
        channels: ChannelStore,
        directory: UserDirectory,
        grace_seconds: float,
        token_warning_seconds: int,
        counters: SignalingCounters,
        media: MediaPort | None = None,
        clock: Callable[[], float] = time.time,
        turn: TurnCredentials | None = None,
    ) -> None:
        self._key = key
        #: mints each participant's TURN credential for ``joined.ice_servers`` (None: no relay)
        self.turn = turn
        self._channels = channels
        self._directory = directory
        self._token_warning = token_warning_seconds
        self.counters = counters
        self.media = media
        self.registry = SessionRegistry(grace_seconds)
        self.routes: dict[str, Route] = {}  # session id -> its route, when not its channel's
        #: session id -> its open emergency's level-3 hold (signaling.emergency), over any route
        self.holds: dict[str, Route] = {}
        self.emergency: EmergencyDesk | None = None  # set by the app when alerts are kept
        #: the cluster this node belongs to (``serve --redis-url``), else None
        self.cluster: ClusterPort | None = None
        #: other nodes' sessions (a channel spanning nodes) and where talk events for them go
        self.remote = RemotePeople(on_change=self._remote_changed)
        self.talk_out: TalkOut | None = None
        #: sessions told ``degraded`` during this partition (cleared when the cluster returns)
        self.degraded: set[str] = set()
        self._monitors: dict[str, set[str]] = {}  # channel -> sessions of another that hear it
        #: dispatcher consoles (sessions that sent ``monitor`` or ``talk_target``), by session id
        self.consoles: dict[str, consoles.Console] = {}
        #: server-side sources (announcements, relays) by id -> display name, for talk events
        self.sources: dict[str, str] = {}
        self.source_levels: dict[str, int] = {}  # their levels when not 1 (urgent: 2)
        self._duck_db: dict[str, int] = {}  # channel -> its duck level, as of its last join
        self._ducking: set[tuple[str, int]] = set()  # (channel, slot) held by level >= 2
        self._outboxes: dict[str, Outbox] = {}
        self._warned: dict[str, int] = {}
        self._ice_restarted: dict[str, float] = {}  # session id -> its last ICE restart
        #: sessions being ended: who they were and their route, for the talk_stopped that
        #: closing their media sends (a talker who leaves mid-talk)
        self._ending: dict[str, tuple[Participant, Route]] = {}
        self._clock = clock
        self._reaper: asyncio.Task[None] | None = None
        self._directory_revision: int | None = None
        # Observers of every channel broadcast (the dashboard's live view): called on the event
        # loop, must only queue and return (they never hold up a broadcast).
        self.watchers: list[Callable[[str, ServerMessage], None]] = []
        #: the latest network diagnostics of each session (``stats``: shown, never trusted)
        self.diagnostics = Diagnostics()
        #: observers of accepted diagnostics, by channel (the live view), same rules as watchers
        self.stats_watchers: list[Callable[[str], None]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_forever(), name="signaling-reaper")

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None
        self.close_all("server_shutdown", "server restart")

    def migrate(self, targets: list[str], deadline_s: float) -> int:
        """Ask every connected session to join elsewhere (a drain): ``migrate`` with one of
        ``targets`` each, in turn (none: null, the same address after a back-off). How many
        were asked."""
        asked = 0
        for session in list(self.registry):
            if session.id not in self._outboxes:
                continue
            url = targets[asked % len(targets)] if targets else None
            self._send(session, ServerMigrate(url=url, deadline_s=round(deadline_s, 3)))
            asked += 1
        return asked

    def close_all(self, reason: str, close_reason: str) -> int:
        """End every session now (``reason`` for the others), closing its socket with 1012
        (join again). How many there were."""
        sessions = list(self.registry)
        for session in sessions:
            outbox = self._outboxes.get(session.id)
            if outbox is not None:
                outbox.close(CLOSE_RESTART, close_reason)
            self._end(session, reason, notify_self=False)
        return len(sessions)

    # ------------------------------------------------------------------ auth
    def verify_join(self, token: str, channel_name: str) -> Verified:
        """Check the token, the user and the channel (blocking: call from a worker thread)."""
        now = int(self._clock())
        try:
            claims = verify_token(self._key, token, audience=Audience.JOIN, now=now)
        except TokenError as exc:
            raise ProtocolError(_TOKEN_CODES[exc.reason], exc.message) from None
        try:
            principal = effective_principal(claims, self._directory.lookup(claims.sub))
        except DirectoryRefusal as exc:
            raise ProtocolError(_REFUSAL_CODES[exc.reason], exc.message) from None
        if not principal.may_join(channel_name):
            raise ProtocolError(ErrorCode.CHANNEL_FORBIDDEN, "token does not cover this channel")
        channel = self._channels.get(channel_name)
        if channel is None:
            raise ProtocolError(ErrorCode.CHANNEL_NOT_FOUND, "no such channel")
        return Verified(principal, channel)

    def resumable(self, msg: ClientJoin, verified: Verified) -> bool:
        """Whether ``msg`` resumes a live session of this node (a call in progress: it needs
        no admission, so a Redis outage never ends it)."""
        old = self.registry.get(msg.session_id) if msg.session_id else None
        return (
            old is not None
            and old.state is not SessionState.CLOSED
            and old.channel == verified.channel.name
            and old.key == (verified.principal.sub, msg.device_id)
        )

    async def admit(self, msg: ClientJoin, verified: Verified) -> None:
        """The cluster's word on a new session (ProtocolError with the join's id: refused)."""
        if self.cluster is None or self.resumable(msg, verified):
            return
        try:
            await self.cluster.admit(verified.channel.name)
        except ProtocolError as err:
            err.request_id = msg.id
            raise

    # ------------------------------------------------------------------ transitions
    def join(self, outbox: Outbox, msg: ClientJoin, verified: Verified) -> Session:
        now = self._clock()
        channel = verified.channel.name
        old = self.registry.by_key((verified.principal.sub, msg.device_id))
        if old is not None and not (old.id == msg.session_id and old.channel == channel):
            # Same user and device joining afresh: the old session goes, no ghost remains.
            self.counters.replacements += 1
            self._end(old, "replaced", notify_self=True, close_code=CLOSE_REPLACED)
        opened = self.registry.open(verified.principal, msg.device_id, channel, now, msg.session_id)
        session = opened.session
        settings = verified.channel.settings
        session.level = int(
            talk_priority.level_for(verified.principal.role.value, session.sub, settings)
        )
        session.listener = talk_priority.is_listener(session.sub, settings)
        self._duck_db[channel] = talk_priority.duck_db(settings)
        previous = self._outboxes.get(session.id)
        if previous is not None and previous is not outbox:
            previous.close(CLOSE_REPLACED, "resumed elsewhere")
        self._outboxes[session.id] = outbox
        self._warned.pop(session.id, None)
        if opened.resumed:
            self.counters.resumes += 1
        else:
            self.counters.joins += 1
            if self.cluster is not None:
                self.cluster.joined(session.id, channel)
        others = [s for s in self.registry.in_channel(session.channel) if s is not session]
        watching = [
            participant(m, monitoring=True)
            for m in self._monitoring(session.channel)
            if m is not session
        ]
        self._send(
            session,
            ServerJoined(
                session_id=session.id,
                resumed=opened.resumed,
                channel=ChannelInfo(
                    name=verified.channel.name, display_name=verified.channel.display_name
                ),
                you=participant(session),
                participants=[participant(s) for s in others]
                + self.remote.in_channel(session.channel)
                + watching,
                grace_seconds=self.registry.grace_seconds,
                token_expires_at=session.token_expires_at,
                id=msg.id,
                talk_right="listener" if session.listener else "talker",
                priority=session.level,
                ice_servers=self.ice_servers(session),
            ),
        )
        if not opened.resumed:
            self.broadcast(
                session.channel,
                ServerParticipantJoined(participant=participant(session)),
                exclude=session,
            )
        if not opened.resumed:
            self._forget_route(session)
        if self.media is not None and not (opened.resumed and self.media.has_transport(session.id)):
            self._open_media(session)
        log.info(
            "session %s",
            "resumed" if opened.resumed else "joined",
            extra={"session": session.id, "sub": session.sub, "channel": session.channel},
        )
        return session

    def ice_servers(self, session: Session) -> list[IceServer]:
        """The TURN relays for ``session``'s peer connection, with fresh credentials."""
        if self.turn is None:
            return []
        return [IceServer.model_validate(self.turn.for_user(session.sub, self._clock()))]

    def answer(self, session: Session, sdp: str, revision: int | None = None) -> None:
        if self.media is None or not self.media.has_transport(session.id):
            raise ProtocolError(ErrorCode.NO_OFFER, "no offer is waiting for an answer")
        try:
            reoffer = self.media.answer(session.id, sdp, revision)
        except ValueError as exc:
            raise ProtocolError(ErrorCode.BAD_ANSWER, str(exc)[:200]) from None
        self._reoffer(session, reoffer)

    # ------------------------------------------------------------------ routes
    def route(self, session: Session) -> Route:
        """The session's route: its channel both ways (a listener: hearing only) at its level,
        unless it asked for another."""
        return (
            self.holds.get(session.id) or self.routes.get(session.id) or self.default_route(session)
        )

    @staticmethod
    def default_route(session: Session) -> Route:
        ch = session.channel
        return Route(() if session.listener else (ch,), (ch,), priority=session.level)

    def verify_route(self, session: Session, msg: ClientRoute) -> Route:
        """Check a requested route (blocking channel look-ups: call from a worker thread):
        every channel must be one the user may join, and exist; a listener talks into none; only
        level 2 talks into several. Its level is the principal's in the first channel it talks
        into (a ``priority`` in the message is ignored). Nothing changes here."""
        try:
            route = Route(tuple(msg.sends), tuple(msg.hears))
        except ValueError as exc:
            raise ProtocolError(ErrorCode.INVALID_FIELD, str(exc), request_id=msg.id) from None
        for name in sorted(route.channels):
            if not session.principal.may_join(name):
                raise ProtocolError(
                    ErrorCode.ROUTE_FORBIDDEN,
                    f"you may not talk into or hear channel {name!r}",
                    request_id=msg.id,
                )
        found: dict[str, Channel] = {}
        for name in sorted(route.channels):
            channel = self._channels.get(name)
            if channel is None:
                raise ProtocolError(
                    ErrorCode.CHANNEL_NOT_FOUND, f"no channel {name!r}", request_id=msg.id
                )
            found[name] = channel
        role, sub = session.principal.role.value, session.sub
        for name in route.sends:
            if talk_priority.is_listener(sub, found[name].settings):
                raise ProtocolError(
                    ErrorCode.LISTEN_ONLY, f"you may only listen in {name!r}", request_id=msg.id
                )
        levels = [talk_priority.level_for(role, sub, found[n].settings) for n in route.sends]
        if len(route.sends) > 1 and min(levels) < talk_priority.Level.URGENT:
            raise ProtocolError(
                ErrorCode.NOT_SUPERVISOR,
                "only supervisors talk into several channels at once",
                request_id=msg.id,
            )
        level = int(levels[0]) if levels else session.level
        return Route(route.sends, route.hears, priority=level)

    def set_route(self, session: Session, route: Route, request_id: str | None = None) -> None:
        """Apply a verified route (event loop): at once for what the peer connection already
        carries, through a renegotiation offer for new channels heard."""
        if session.state is SessionState.CLOSED:
            return
        self.consoles.pop(session.id, None)  # a plain route ends the console's own
        reoffer = self._apply_route(session, route)
        self._send(
            session, ServerRouted(sends=list(route.sends), hears=list(route.hears), id=request_id)
        )
        self._reoffer(session, reoffer)

    def _apply_route(self, session: Session, route: Route) -> Reoffer | None:
        """Put ``route`` in force; the channels it now hears from elsewhere see it arrive
        (``participant_joined`` with ``monitoring: true``), those it no longer hears see it go."""
        before = self._heard_elsewhere(session)
        self._forget_route(session, announce=False)
        if route != self.default_route(session):
            self.routes[session.id] = route
            for channel in route.hears:
                if channel != session.channel:
                    self._monitors.setdefault(channel, set()).add(session.id)
        after = self._heard_elsewhere(session)
        for channel in after - before:
            joined = ServerParticipantJoined(participant=participant(session, monitoring=True))
            self.broadcast(channel, joined)
        for channel in sorted(before - after):
            self._monitor_left(session, channel, "unmonitored")
        if self.cluster is not None:
            self.cluster.routed(session.id, self.route(session).channels)
        if self.media is not None and self.media.has_transport(session.id):
            # self.route: an open emergency's hold stays over the new route until it ends
            return self.media.set_route(session.id, self.route(session))
        return None

    def _heard_elsewhere(self, session: Session) -> set[str]:
        route = self.routes.get(session.id)
        return {c for c in route.hears if c != session.channel} if route is not None else set()

    def _monitoring(self, channel: str) -> list[Session]:
        """Sessions of other channels hearing ``channel``."""
        found = (self.registry.get(sid) for sid in self._monitors.get(channel, ()))
        return [s for s in found if s is not None]

    def _monitor_left(self, session: Session, channel: str, reason: str) -> None:
        left = participant(session, monitoring=True)
        self.broadcast(channel, ServerParticipantLeft(participant=left, reason=reason))

    def _forget_route(self, session: Session, *, announce: bool = True, reason: str = "") -> None:
        old = self.routes.pop(session.id, None)
        for channel in old.hears if old is not None else ():
            monitors = self._monitors.get(channel)
            if monitors is not None and session.id in monitors:
                monitors.discard(session.id)
                if not monitors:
                    del self._monitors[channel]
                if announce:
                    self._monitor_left(session, channel, reason or "unmonitored")

    def ice_restart(self, session: Session, request_id: str | None = None) -> None:
        """Restart ICE on the sender's own transport (``ice_restart``): at most one per
        ICE_RESTART_MIN_SECONDS, refused with ``ice_restart_too_often``."""
        if self.media is None or not self.media.has_transport(session.id):
            raise ProtocolError(ErrorCode.NO_OFFER, "no media transport to restart")
        now = self._clock()
        last = self._ice_restarted.get(session.id)
        if last is not None and now - last < ICE_RESTART_MIN_SECONDS:
            raise ProtocolError(
                ErrorCode.ICE_RESTART_TOO_OFTEN,
                f"at most one ICE restart per {ICE_RESTART_MIN_SECONDS:g} s",
                request_id=request_id,
            )
        try:
            offer = self.media.ice_restart(session.id)
        except ValueError as exc:
            raise ProtocolError(ErrorCode.NO_OFFER, str(exc)[:200], request_id=request_id) from None
        self._ice_restarted[session.id] = now
        self._send(
            session,
            ServerOffer(sdp=offer.sdp, renegotiate=True, restart=True, revision=offer.revision),
        )

    def _reoffer(self, session: Session, reoffer: Reoffer | None) -> None:
        if reoffer is not None:
            blocks = getattr(reoffer, "blocks", ())
            self._send(
                session,
                ServerOffer(
                    sdp=reoffer.sdp,
                    renegotiate=True,
                    revision=reoffer.revision,
                    slots_map=consoles.slots_map(blocks) if session.id in self.consoles else None,
                ),
            )

    def _open_media(self, session: Session) -> None:
        """A new peer connection for the session (a console's offer has its slots map)."""
        assert self.media is not None
        sdp = self.media.open(session.id, self.route(session))
        slots_map = None
        if session.id in self.consoles:
            slots_map = consoles.slots_map(self.media.blocks(session.id))
        self._send(session, ServerOffer(sdp=sdp, slots_map=slots_map))

    # ------------------------------------------------------------------ the console
    def verify_console(
        self, session: Session, channels: list[str], request_id: str | None
    ) -> consoles.Supervision:
        """Check channels a console names (blocking look-ups: call from a worker thread): each
        must exist and be one the user supervises. Returns what the user supervises."""
        try:
            record = self._directory.lookup(session.sub)
        except DirectoryRefusal as exc:
            raise ProtocolError(
                _REFUSAL_CODES[exc.reason], exc.message, request_id=request_id
            ) from None
        supervised = consoles.supervision(session.principal, record)
        consoles.check_supervised(channels, supervised, request_id)
        for name in sorted(set(channels)):
            if self._channels.get(name) is None:
                raise ProtocolError(
                    ErrorCode.CHANNEL_NOT_FOUND, f"no channel {name!r}", request_id=request_id
                )
        return supervised

    def console_of(self, session: Session) -> consoles.Console:
        return self.consoles.get(session.id) or consoles.Console(session.channel)

    def monitor(
        self, session: Session, channels: list[str], *, add: bool, request_id: str | None
    ) -> None:
        """``monitor`` (add) or ``unmonitor`` on a verified list (event loop): answered with
        ``monitored`` and, when channels need slot m-lines, a renegotiation offer."""
        if session.state is SessionState.CLOSED:
            return
        console = self.console_of(session)
        change = consoles.monitor if add else consoles.unmonitor
        self._set_console(session, change(console, channels, request_id))
        blocks = self.media.blocks(session.id) if self.media is not None else ()
        self._send_monitored(session, blocks, request_id)
        for channel in dict.fromkeys(channels) if add else ():
            if channel not in console.heard:
                self._talking_now(session, channel)

    def _talking_now(self, console: Session, channel: str) -> None:
        """Who talks in a channel a console starts hearing (their talk began before)."""
        for member in self.registry.in_channel(channel):
            if member.talking_slot is None or member is console:
                continue
            level, kind = self.level_and_kind(member.id)
            started = ServerTalkStarted(
                speaker=participant(member),
                slot=member.talking_slot,
                channel=channel,
                priority=level,
                kind=kind,
            )
            self._send_console(console, started)

    def set_talk_target(
        self,
        session: Session,
        channels: list[str] | None,
        user: str | None,
        supervised: consoles.Supervision,
        request_id: str | None,
    ) -> None:
        """``talk_target`` on verified channels (event loop): a direct talk reaches the user's
        sessions in channels the console's user supervises (``target_offline`` when none)."""
        if session.state is SessionState.CLOSED:
            return
        if user is not None:
            devices = {
                s.id: s.channel
                for s in self.registry
                if s.sub == user
                and s is not session
                and s.state is not SessionState.CLOSED
                and s.channel in supervised
            }
            target = consoles.direct_target(user, devices, request_id)
        else:
            target = consoles.channel_target(channels or [], request_id)
        console = self.console_of(session)
        self._set_console(session, consoles.Console(console.channel, console.monitored, target))
        self._send(
            session,
            ServerTalkTargetSet(
                channels=list(target.channels), user=target.user, kind=target.kind.value,
                id=request_id,
            ),
        )  # fmt: skip

    def _set_console(self, session: Session, console: consoles.Console) -> None:
        self.consoles[session.id] = console
        route = consoles.console_route(console, session.level, session.listener)
        reoffer = self._apply_route(session, route)
        if reoffer is not None and consoles.too_many_mlines(getattr(reoffer, "blocks", ())):
            # blocks are only ever appended: after much monitor churn, a fresh peer connection
            # with just the channels heard now (a plain offer; a short gap in each)
            self._open_media(session)
        else:
            self._reoffer(session, reoffer)

    def _send_monitored(
        self, session: Session, blocks: tuple[tuple[str, tuple[int, ...]], ...], rid: str | None
    ) -> None:
        console = self.console_of(session)
        self._send(
            session,
            ServerMonitored(
                channels=list(console.heard), slots_map=consoles.slots_map(blocks), id=rid
            ),
        )

    def _for_console(self, session: Session, message: ServerMessage) -> ServerMessage | None:
        """A talk, duck or preempted event as a console gets it: with its session slot (None:
        a talk or duck event of a slot it has no m-line for, not sent)."""
        if session.id not in self.consoles or self.media is None:
            return message
        channel = getattr(message, "channel", None)
        slot = getattr(message, "slot", None)
        if channel is None or slot is None:
            return message
        heard = self.console_of(session).heard
        mapped = consoles.session_slot(self.media.blocks(session.id), channel, slot, heard)
        if mapped == slot:
            return message
        if mapped is None and not isinstance(message, ServerPreempted):
            return None
        return message.model_copy(update={"slot": mapped})

    def _send_console(self, session: Session, message: ServerMessage) -> None:
        out = self._for_console(session, message)
        if out is not None:
            self._send(session, out)

    def speaker(self, session_id: str) -> tuple[str, str] | None:
        """(sub, display name) of a session or a server-side source."""
        session = self.registry.get(session_id)
        if session is not None:
            return (session.sub, session.name)
        name = self.sources.get(session_id)
        if name is not None:
            return (f"source:{session_id}", name)
        remote = self.remote.get(session_id)  # a talker of another node, arbitrated here
        return (remote.sub, remote.name) if remote is not None else None

    def verify_refresh(self, session: Session, msg: ClientRefresh) -> Principal:
        """Check a fresh token for the same user (blocking directory lookup: worker thread)."""
        now = int(self._clock())
        try:
            claims = verify_token(self._key, msg.token, audience=Audience.JOIN, now=now)
        except TokenError as exc:
            raise ProtocolError(_TOKEN_CODES[exc.reason], exc.message, request_id=msg.id) from None
        if claims.sub != session.sub:
            raise ProtocolError(
                ErrorCode.TOKEN_SUBJECT, "token is for another user", request_id=msg.id
            )
        try:
            principal = effective_principal(claims, self._directory.lookup(claims.sub))
        except DirectoryRefusal as exc:
            raise ProtocolError(
                _REFUSAL_CODES[exc.reason], exc.message, request_id=msg.id
            ) from None
        if not principal.may_join(session.channel):
            raise ProtocolError(
                ErrorCode.CHANNEL_FORBIDDEN, "token does not cover this channel", request_id=msg.id
            )
        return principal

    def refresh(self, session: Session, principal: Principal, request_id: str | None) -> None:
        """Swap in the verified principal of a fresh token (event loop)."""
        if session.state is SessionState.CLOSED:
            return
        session.principal = principal
        session.token_expires_at = principal.expires_at
        self._warned.pop(session.id, None)
        self._send(session, ServerRefreshed(expires_at=principal.expires_at, id=request_id))

    def leave(self, session: Session, request_id: str | None = None) -> None:
        self._send(session, ServerLeft(reason="left", id=request_id))
        self._end(session, "left", notify_self=False)

    def detach(self, session: Session, outbox: Outbox) -> None:
        """The connection of a session dropped: keep the session for the grace period."""
        if self._outboxes.get(session.id) is not outbox:
            return  # already replaced or resumed on another connection
        del self._outboxes[session.id]
        self.registry.detach(session, self._clock())
        if self.registry.grace_seconds <= 0:
            self._end(session, "disconnected", notify_self=False)

    # ------------------------------------------------------------------ media events
    def _speaker(self, session_id: str) -> Participant | None:
        session = self.registry.get(session_id)
        if session is not None:
            return participant(session)
        name = self.sources.get(session_id)
        if name is None:
            return self.remote.get(session_id)
        return Participant(id=session_id, sub=f"source:{session_id}", name=name, device_id="server")

    def talk_started(self, session_id: str, channel: str, slot: int) -> None:
        self._talk(session_id, channel, slot, started=True)

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None:
        self._talk(session_id, channel, slot, started=False)

    def level_and_kind(self, session_id: str) -> tuple[int, str]:
        """A talker's level and the kind of its talk (``talk_started``)."""
        session = self.registry.get(session_id)
        remote_route = None
        if session is None and self.media is not None and self.remote.get(session_id):
            remote_route = self.media.route_of(session_id)  # as its relay datagrams tell it
        if session is None and remote_route is None:
            level = self.source_levels.get(session_id, talk_priority.Level.ROUTINE)
            return int(level), talk_priority.Kind.ANNOUNCEMENT.value
        route = self.route(session) if session is not None else remote_route
        assert route is not None
        kind = talk_priority.Kind.SPEECH
        if route.hold:
            kind = talk_priority.Kind.EMERGENCY
        elif route.only is not None:
            kind = talk_priority.Kind.DIRECT
        elif len(route.sends) > 1:
            kind = talk_priority.Kind.ALL_CALL
        return max(route.priority, int(talk_priority.KIND_LEVEL[kind])), kind.value

    def burst_route(self, session_id: str, channel: str) -> tuple[str, tuple[str, ...], str | None]:
        """A tapped burst's kind, the other channels it reaches (an all-call's: a call-log row
        in each) and a direct talk's target (the call-log tap asks, at each burst's start)."""
        session = self.registry.get(session_id)
        route = self.route(session) if session is not None else None
        if route is None and self.media is not None:  # a server-side source
            route = self.media.route_of(session_id)
        if route is None:
            return (talk_priority.Kind.SPEECH.value, (), None)
        _, kind = self.level_and_kind(session_id)
        console = self.consoles.get(session_id)
        target = console.target.user if console is not None and console.target else None
        return (kind, tuple(c for c in route.sends if c != channel), target)

    def _talk(self, session_id: str, channel: str, slot: int, *, started: bool) -> None:
        session = self.registry.get(session_id)
        if session is not None and channel == session.channel:
            session.talking_slot = slot if started else None
        ending = self._ending.get(session_id)
        speaker = self._speaker(session_id) or (ending[0] if ending else None)
        if speaker is None:
            return
        duck: int | None = None
        message: ServerMessage
        if started:
            level, kind = self.level_and_kind(session_id)
            message = ServerTalkStarted(
                speaker=speaker, slot=slot, channel=channel, priority=level, kind=kind
            )
            if level >= talk_priority.Level.URGENT:
                self._ducking.add((channel, slot))
                duck = self._duck_db.get(channel, talk_priority.DEFAULT_DUCK_DB)
        else:
            message = ServerTalkStopped(speaker=speaker, slot=slot, channel=channel)
            if (channel, slot) in self._ducking:
                self._ducking.discard((channel, slot))
                duck = 0
        route = self.route(session) if session is not None else ending[1] if ending else None
        only = route.only | {session_id} if route is not None and route.only is not None else None
        self._to_hearers(channel, message, only=only)
        out = self.talk_out
        if out is not None:  # the channel's hearers on other nodes
            out.hear(channel, message, only, None)
        if duck is not None:  # after talk_started / talk_stopped: the client knows the slot
            duck_msg = ServerDuck(db=duck, slot=slot, channel=channel)
            self._to_hearers(channel, duck_msg, exclude=session, only=only)
            if out is not None:
                out.hear(channel, duck_msg, only, session_id)

    def degrade(self, channels: set[str]) -> int:
        """Tell each session here in (or hearing) one of ``channels`` once that it must join
        again (``degraded``: this node is cut off from the cluster); how many were told now."""
        told = 0
        for session in list(self.registry):
            hit = sorted(self.route(session).channels & channels)
            if not hit or session.id in self.degraded or session.state is SessionState.CLOSED:
                continue
            self.degraded.add(session.id)
            self._send(session, ServerDegraded(channel=hit[0]))
            told += 1
        return told

    def hear_remote(
        self, channel: str, data: object, only: frozenset[str] | None, exclude: str | None
    ) -> bool:
        """A talk event of ``channel`` its owner (another node) decided, for the hearers here;
        False: not a talk message (dropped)."""
        message = parse_relayed(data)
        if message is None:
            return False
        if isinstance(message, ServerTalkStarted | ServerTalkStopped):
            talker = self.registry.get(message.speaker.id)
            if talker is not None and talker.channel == channel:  # our talker, arbitrated there
                started = isinstance(message, ServerTalkStarted)
                talker.talking_slot = message.slot if started else None
        skip = self.registry.get(exclude) if exclude is not None else None
        self._to_hearers(channel, message, exclude=skip, only=only)
        return True

    def to_remote(self, session_id: str, data: object) -> bool:
        """A talk message for a session here from another node (``slot_busy``,
        ``preempted``); False: not a talk message, or no such session here."""
        message = parse_relayed(data)
        session = self.registry.get(session_id)
        if message is None or session is None:
            return False
        if isinstance(message, ServerPreempted):
            self._send_console(session, message)
        else:
            self._send(session, message)
        return True

    def reoffer(self, session: Session, reoffer: Reoffer | None) -> None:
        self._reoffer(session, reoffer)

    def to_hearers(self, channel: str, message: ServerMessage) -> None:
        """Send ``message`` to the channel's sessions and to those hearing it from another."""
        self._to_hearers(channel, message)

    def _to_hearers(
        self,
        channel: str,
        message: ServerMessage,
        exclude: Session | None = None,
        only: frozenset[str] | None = None,
    ) -> None:
        """The channel's sessions and the sessions of other channels hearing it (``only``: a
        direct talk's, just these sessions and the talker hear of it; the live view too)."""
        if only is not None:
            for sid in sorted(only):
                member = self.registry.get(sid)
                if member is not None and member is not exclude and member.channel == channel:
                    self._send(member, message)
            self.broadcast(channel, message, exclude=exclude, sessions=False)
        else:
            self.broadcast(channel, message, exclude=exclude)
        for monitor in self._monitoring(channel):
            if monitor is not exclude and (only is None or monitor.id in only):
                self._send_console(monitor, message)

    def preempted(self, session_id: str, channel: str, slot: int, by: str) -> None:
        session = self.registry.get(session_id)
        speaker = self._speaker(by)
        if speaker is None:
            return
        message = ServerPreempted(slot=slot, channel=channel, by=speaker)
        if session is not None:
            self._send_console(session, message)
        elif self.talk_out is not None and self.remote.get(session_id) is not None:
            self.talk_out.to(session_id, message)

    def media_lost(self, session_id: str) -> None:
        """The session's transport died (ICE consent expired, DTLS failed): offer a new one."""
        session = self.registry.get(session_id)
        if session is None or self.media is None:
            return
        if session.talking_slot is not None:
            self.talk_stopped(session_id, session.channel, session.talking_slot)
        if session.id in self._outboxes:
            self._open_media(session)

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None:
        session = self.registry.get(session_id)
        if session is not None:
            self._send(session, ServerSlotBusy(slots=slots))
        elif self.talk_out is not None and self.remote.get(session_id) is not None:
            self.talk_out.to(session_id, ServerSlotBusy(slots=slots))

    # ------------------------------------------------------------------ sending
    def _send(self, session: Session, message: ServerMessage) -> None:
        outbox = self._outboxes.get(session.id)
        if outbox is not None and not outbox.send(encode(message)):
            self._overflow(session, outbox)

    def _remote_changed(self, channel: str, person: Participant, joined: bool) -> None:
        """A session of another node came into ``channel`` or left it (its node said so, or
        died): this node's members of the channel see it in their people lists. The live view
        is not told: each node's live events reach it by themselves."""
        message: ServerMessage = (
            ServerParticipantJoined(participant=person)
            if joined
            else ServerParticipantLeft(participant=person, reason="left")
        )
        self.broadcast(channel, message, watchers=False)

    def broadcast(
        self,
        channel: str,
        message: ServerMessage,
        exclude: Session | None = None,
        *,
        sessions: bool = True,
        watchers: bool = True,
    ) -> None:
        """To the channel's sessions (``sessions``) and its watchers (the live view,
        ``watchers``)."""
        text = encode(message)
        for session in self.registry.in_channel(channel) if sessions else ():
            if session is exclude:
                continue
            outbox = self._outboxes.get(session.id)
            if outbox is not None and not outbox.send(text):
                self._overflow(session, outbox)
        for watch in self.watchers if watchers else ():
            try:
                watch(channel, message)
            except Exception:
                log.exception("broadcast watcher failed")

    def _overflow(self, session: Session, outbox: Outbox) -> None:
        self.counters.send_queue_overflows += 1
        outbox.close(CLOSE_SLOW, "too slow to read")
        self.detach(session, outbox)

    def send_error(self, session: Session, err: ProtocolError, fatal: bool = False) -> None:
        self.counters.errors[err.code.value] += 1
        self._send(
            session, ServerError(code=err.code, message=err.message, id=err.request_id, fatal=fatal)
        )

    # ------------------------------------------------------------------ endings
    def stats(self, session: Session, msg: ClientStats) -> None:
        """A session's network diagnostics: kept (at most one per MIN_INTERVAL) and shown."""
        report = Report(
            path=msg.path,
            rtt_ms=msg.rtt_ms,
            loss=msg.loss,
            jitter_ms=msg.jitter_ms,
            concealed_ratio=msg.concealed_ratio,
            at=self._clock(),
        )
        if self.diagnostics.record(session.id, report):
            for watch in self.stats_watchers:
                watch(session.channel)

    def _end(
        self, session: Session, reason: str, *, notify_self: bool, close_code: int = CLOSE_NORMAL
    ) -> None:
        outbox = self._outboxes.pop(session.id, None)
        if notify_self and outbox is not None:
            outbox.send(encode(ServerLeft(reason=reason)))
            outbox.close(close_code, reason)
        self._warned.pop(session.id, None)
        self._ice_restarted.pop(session.id, None)
        if not self.registry.close(session):
            return
        if self.cluster is not None:
            self.cluster.ended(session.id)
        self._ending[session.id] = (participant(session), self.route(session))
        try:
            self.consoles.pop(session.id, None)
            self._forget_route(session, reason=reason)
            self.holds.pop(session.id, None)
            self.diagnostics.forget(session.id)
            if self.media is not None:
                self.media.close(session.id)  # a talk in progress ends: talk_stopped
        finally:
            del self._ending[session.id]
        self.broadcast(
            session.channel, ServerParticipantLeft(participant=participant(session), reason=reason)
        )
        log.info("session ended", extra={"session": session.id, "reason": reason})

    def reap(self) -> None:
        """Close sessions whose grace period ran out; warn and end sessions whose token expires."""
        now = self._clock()
        for session in self.registry.expired(now):
            self.counters.expirations += 1
            self._end(session, "disconnected", notify_self=False)
        for session in self.registry:
            if session.state is not SessionState.ATTACHED:
                continue
            exp = session.token_expires_at
            if now >= exp:
                err = ProtocolError(ErrorCode.TOKEN_EXPIRED, "token expired; join again")
                self.send_error(session, err, fatal=True)
                self._end(session, "token_expired", notify_self=True, close_code=CLOSE_UNAUTHORIZED)
            elif now >= exp - self._token_warning and self._warned.get(session.id) != exp:
                self._warned[session.id] = exp
                self._send(session, ServerTokenExpiring(expires_at=exp))

    # ------------------------------------------------------------------ directory changes
    async def recheck_directory(self) -> None:
        """When the directory changed (a user disabled, removed from a channel — by this
        process or by the CLI), end the live sessions it no longer allows. One cheap revision
        read per call; look-ups only after a change."""
        revision = await asyncio.to_thread(self._directory.revision)
        if revision == self._directory_revision:
            return
        self._directory_revision = revision
        subs = {s.sub for s in self.registry}
        if subs:
            verdicts = await asyncio.to_thread(lookup_all, self._directory, subs)
            self.apply_directory(verdicts)
            self.apply_console_rights(verdicts)
            names = {s.channel for s in self.registry}
            found = await asyncio.to_thread(lambda: {n: self._channels.get(n) for n in names})
            self.apply_talk_rules({n: c.settings for n, c in found.items() if c is not None})

    def apply_console_rights(self, verdicts: dict[str, UserRecord | str | None]) -> None:
        """A console whose user no longer supervises a channel stops hearing it and talking
        into it at once (it is told with ``channel_not_supervised`` and ``monitored``)."""
        for sid, console in list(self.consoles.items()):
            session = self.registry.get(sid)
            verdict = verdicts.get(session.sub) if session is not None else None
            if session is None or isinstance(verdict, str):
                continue  # gone, or ended by apply_directory
            allowed = consoles.supervision(session.principal, verdict)
            lost = [c for c in console.monitored if c not in allowed]
            target = console.target
            if target is not None and any(c not in allowed for c in target.channels):
                lost += [c for c in target.channels if c not in allowed and c not in lost]
                target = None
            if not lost:
                continue
            kept = tuple(c for c in console.monitored if c not in lost)
            self._set_console(session, consoles.Console(console.channel, kept, target))
            err = ProtocolError(ErrorCode.CHANNEL_NOT_SUPERVISED, f"no longer yours: {lost}")
            self.send_error(session, err)
            blocks = self.media.blocks(session.id) if self.media is not None else ()
            self._send_monitored(session, blocks, None)

    def apply_talk_rules(self, settings: dict[str, dict[str, object]]) -> None:
        """A channel's levels or talk rights changed (an admin, live): sessions in it get their
        new level and right now, their route follows (a new listener talks into nothing), and
        they are told (``talk_right``)."""
        for channel, rules in settings.items():
            self._duck_db[channel] = talk_priority.duck_db(rules)
        for session in self.registry:
            values = settings.get(session.channel)
            if values is None or session.state is SessionState.CLOSED:
                continue
            role = session.principal.role.value
            level = int(talk_priority.level_for(role, session.sub, values))
            listener = talk_priority.is_listener(session.sub, values)
            if (level, listener) == (session.level, session.listener):
                continue
            session.level, session.listener = level, listener
            route = self.routes.get(session.id)
            if route is not None:
                sends = () if listener else route.sends
                self.routes[session.id] = Route(sends, route.hears, route.only, level)
            if self.media is not None and self.media.has_transport(session.id):
                self._reoffer(session, self.media.set_route(session.id, self.route(session)))
            self._send(
                session,
                ServerTalkRight(talk_right="listener" if listener else "talker", priority=level),
            )

    def apply_directory(self, verdicts: dict[str, UserRecord | str | None]) -> None:
        """End sessions whose user is now refused (event loop)."""
        for session in self.registry:
            if session.sub not in verdicts:
                continue  # joined after the look-up: checked at its join
            verdict = verdicts[session.sub]
            reason = (
                verdict if isinstance(verdict, str) else still_allowed(session.channel, verdict)
            )
            if reason is None:
                continue
            code = _REFUSAL_CODES.get(reason, ErrorCode.CHANNEL_FORBIDDEN)
            self.counters.revocations += 1
            self.send_error(session, ProtocolError(code, "access revoked"), fatal=True)
            close = CLOSE_UNAUTHORIZED if code is ErrorCode.USER_UNKNOWN else CLOSE_FORBIDDEN
            self._end(session, "revoked", notify_self=True, close_code=close)

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.reap()
                await self.recheck_directory()
            except Exception:  # the reaper must survive a bug in one session's handling
                log.exception("reaper failed")

    # ------------------------------------------------------------------ metrics
    def session_counts(self) -> dict[SessionState, int]:
        return self.registry.count_by_state()
