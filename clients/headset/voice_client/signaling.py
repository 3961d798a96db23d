"""The client side of the signaling protocol (version 1), sans I/O.

:class:`ClientSession` takes server messages (JSON text) in and returns *actions* for the thin
asyncio layer to carry out: messages to send, an SDP offer to answer, events to print, a token
to fetch, the end of the session. It never touches a socket or the clock, so every exchange is a
unit test. The wire format is the server's ``voice_server.signaling.messages``; this module
accepts unknown fields and unknown message types (a newer server), and checks only what it uses.

Order: ``start()`` -> send ``join`` (the token travels only here, never in the URL) -> server
``joined`` then ``offer`` -> the caller answers -> ``answer()`` -> talk events ... -> ``leave()``
-> server ``left``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "PROTOCOL_VERSION",
    "Action",
    "AnswerOffer",
    "ClientSession",
    "Duck",
    "Emit",
    "End",
    "Move",
    "NeedToken",
    "NodeUnavailable",
    "Send",
    "SessionState",
    "Warn",
    "websocket_url",
]

PROTOCOL_VERSION = 1


# ---------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Send:
    """Send this message (a JSON object) on the WebSocket."""

    message: dict[str, Any]

    def text(self) -> str:
        return json.dumps(self.message, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class AnswerOffer:
    """Apply this SDP offer and call :meth:`ClientSession.answer`: to a new peer connection, or
    (``renegotiate``) to the existing one, echoing ``revision`` in the answer."""

    sdp: str
    renegotiate: bool = False
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class Emit:
    """An event for the user (the CLI prints it as one JSON line)."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Warn:
    """Something the user should know that does not end the session (one line)."""

    text: str


@dataclass(frozen=True, slots=True)
class NeedToken:
    """The token expires at ``expires_at``: call :meth:`ClientSession.refresh` with a new one."""

    expires_at: int


@dataclass(frozen=True, slots=True)
class End:
    """The session is over. ``ok`` is False when it ended other than by our own ``leave``.

    ``code`` is the server's error code when a fatal ``error`` ended it.
    """

    ok: bool
    reason: str
    code: str | None = None
    #: the connection dropped while joined or joining: joining again may resume the session
    retry: bool = False


@dataclass(frozen=True, slots=True)
class Duck:
    """Lower every slot but ``channel``'s ``slot`` by ``db`` (0: that duck is over)."""

    db: int
    slot: int
    channel: str
    mid: str | None = None  # a console's: the slot m-line itself (its session slot)


@dataclass(frozen=True, slots=True)
class EmergencyWindow:
    """Our emergency is open: send the microphone for ``seconds`` whatever the gate says
    (0: the window is over)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Move:
    """Join again elsewhere (a drained node's ``migrate``, or a join refused with
    ``node_draining``): at ``url`` when it is one of the nodes the user configured, else the
    same server (or, for None, the next configured node) after a back-off."""

    url: str | None


@dataclass(frozen=True, slots=True)
class NodeUnavailable:
    """The node refused the join with ``cluster_unavailable`` (it cannot reach the cluster's
    Redis; the socket closes next): the next try may go to another configured node."""


Action = (
    Send
    | AnswerOffer
    | Emit
    | Warn
    | NeedToken
    | End
    | Duck
    | EmergencyWindow
    | Move
    | NodeUnavailable
)


class SessionState(Enum):
    NEW = "new"
    JOINING = "joining"  # join sent, waiting for joined
    JOINED = "joined"
    LEAVING = "leaving"  # leave sent, waiting for left
    ENDED = "ended"


# ---------------------------------------------------------------- the session


@dataclass(slots=True)
class ClientSession:
    """One signaling session: join a channel, answer the server's offer, follow talk events."""

    token: str
    channel: str
    device_id: str
    session_id: str | None = None
    state: SessionState = SessionState.NEW
    #: participants by id (session id), as the server last described them
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    you: dict[str, Any] | None = None
    token_expires_at: int | None = None
    grace_seconds: float | None = None
    answered: bool = False
    #: TURN relays from the last ``joined`` (``{urls, username, credential}``; never printed)
    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    #: a console's slot m-lines (mid -> (channel, channel slot)) once the server sent them: its
    #: talk and duck events then carry session slots (the mid's number)
    slots_map: dict[str, tuple[str, int]] | None = None

    # -------------------------------------------------------- things the user does

    def start(self) -> list[Action]:
        """The first message on a new connection: ``join``."""
        if self.state is not SessionState.NEW:
            raise RuntimeError("session already started")
        self.state = SessionState.JOINING
        join: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "type": "join",
            "token": self.token,
            "channel": self.channel,
            "device_id": self.device_id,
        }
        if self.session_id is not None:
            join["session_id"] = self.session_id
        return [Send(join)]

    def answer(self, sdp: str, revision: int | None = None) -> list[Action]:
        """The peer connection produced its SDP answer to the server's offer (``revision``: a
        renegotiation offer's, echoed)."""
        if self.state is not SessionState.JOINED:
            return []
        self.answered = True
        msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": "answer", "sdp": sdp}
        if revision is not None:
            msg["revision"] = revision
        return [Send(msg)]

    def route(self, sends: list[str], hears: list[str]) -> list[Action]:
        """Talk into ``sends`` and hear ``hears`` from now on (the server answers ``routed``,
        and a renegotiation ``offer`` when new channels need slots)."""
        if self.state is not SessionState.JOINED:
            return []
        return [Send({"v": PROTOCOL_VERSION, "type": "route", "sends": sends, "hears": hears})]

    def monitor(self, channels: list[str], *, add: bool = True) -> list[Action]:
        """A console hears ``channels`` too (``add`` False: no longer); the server answers
        ``monitored`` and, for new channels, a renegotiation ``offer`` with a ``slots_map``."""
        if self.state is not SessionState.JOINED:
            return []
        mtype = "monitor" if add else "unmonitor"
        return [Send({"v": PROTOCOL_VERSION, "type": mtype, "channels": channels})]

    def talk_target(
        self, channels: list[str] | None = None, user: str | None = None
    ) -> list[Action]:
        """A console talks into ``channels`` (several: an all-call) or to ``user`` (direct)."""
        if self.state is not SessionState.JOINED:
            return []
        msg: dict[str, Any] = {"v": PROTOCOL_VERSION, "type": "talk_target"}
        if user is not None:
            msg["user"] = user
        else:
            msg["channels"] = channels or []
        return [Send(msg)]

    def refresh(self, token: str) -> list[Action]:
        """Hand the server a fresh token for the same user."""
        self.token = token
        if self.state is not SessionState.JOINED:
            return []
        return [Send({"v": PROTOCOL_VERSION, "type": "refresh", "token": token})]

    def stats(self, fields: dict[str, Any]) -> list[Action]:
        """Network diagnostics for the server (``path``, ``rtt_ms``, ``loss``, ``jitter_ms``)."""
        if self.state is not SessionState.JOINED:
            return []
        return [Send({"v": PROTOCOL_VERSION, "type": "stats", **fields})]

    def emergency(self, action: str) -> list[Action]:
        """Raise an emergency in our channel, or cancel our own (``emergency_update`` follows;
        ``emergency_open`` when ours is still open)."""
        if self.state is not SessionState.JOINED:
            return [Warn("not in a channel: no emergency was sent")]
        return [Send({"v": PROTOCOL_VERSION, "type": "emergency", "action": action})]

    def ping(self) -> list[Action]:
        if self.state is not SessionState.JOINED:
            return []
        return [Send({"v": PROTOCOL_VERSION, "type": "ping"})]

    def leave(self) -> list[Action]:
        """Leave the channel; the session ends when the server answers ``left``."""
        if self.state is SessionState.JOINED:
            self.state = SessionState.LEAVING
            return [Send({"v": PROTOCOL_VERSION, "type": "leave"})]
        if self.state in (SessionState.NEW, SessionState.JOINING):
            # not joined yet: there is nothing to leave, the server drops the join on close
            self.state = SessionState.ENDED
            return [End(ok=True, reason="left before joining")]
        return []

    def connection_lost(self, reason: str = "connection closed by the server") -> list[Action]:
        """The WebSocket closed, or was given up (``reason``: why, e.g. the server went silent)."""
        if self.state is SessionState.ENDED:
            return []
        ok = self.state is SessionState.LEAVING
        retry = self.state in (SessionState.JOINED, SessionState.JOINING)
        self.state = SessionState.ENDED
        if ok:
            return [End(ok=True, reason="left")]
        return [End(ok=False, reason=reason, retry=retry)]

    def reconnect(self, token: str | None = None) -> None:
        """Prepare to join again on a new connection after :meth:`connection_lost`.

        The next :meth:`start` carries the previous ``session_id``: within the server's grace
        period the session is resumed; after it the server starts a new one for the same user
        and device (no ghost participant is left behind)."""
        if token is not None:
            self.token = token
        self.state = SessionState.NEW
        self.answered = False

    # -------------------------------------------------------- what the server says

    def receive(self, text: str | bytes) -> list[Action]:
        """One message from the server."""
        try:
            msg = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            return [Warn("ignored a server message that is not JSON")]
        if not isinstance(msg, dict):
            return [Warn("ignored a server message that is not a JSON object")]
        mtype = msg.get("type")
        if self.state is SessionState.ENDED:
            return []
        try:
            handler = _HANDLERS.get(mtype) if isinstance(mtype, str) else None
            if handler is None:
                return []  # a newer server's message: not for us
            return handler(self, msg)
        except (KeyError, TypeError, ValueError) as exc:
            return [Warn(f"ignored a malformed {mtype!r} message from the server ({exc!r})")]

    def _on_joined(self, msg: dict[str, Any]) -> list[Action]:
        if self.state is not SessionState.JOINING:
            return [Warn("ignored an unexpected 'joined'")]
        self.session_id = _str(msg["session_id"])
        self.you = _participant(msg["you"])
        self.participants = {p["id"]: p for p in map(_participant, msg["participants"])}
        self.token_expires_at = int(msg["token_expires_at"])
        self.grace_seconds = float(msg["grace_seconds"])
        self.ice_servers = _ice_servers(msg.get("ice_servers"))
        self.state = SessionState.JOINED
        channel = msg["channel"]
        return [
            Emit(
                {
                    "event": "joined",
                    "session_id": self.session_id,
                    "resumed": bool(msg.get("resumed", False)),
                    "channel": channel.get("name") if isinstance(channel, dict) else channel,
                    "you": self.you,
                    "participants": list(self.participants.values()),
                    "talk_right": str(msg.get("talk_right", "talker")),
                    "priority": int(msg.get("priority", 1)),
                }
            )
        ]

    def _on_offer(self, msg: dict[str, Any]) -> list[Action]:
        if self.state is not SessionState.JOINED:
            return [Warn("ignored an 'offer' outside a joined session")]
        revision = msg.get("revision")
        out: list[Action] = []
        if isinstance(msg.get("slots_map"), list):
            out.append(self._slots_map(msg["slots_map"]))
        return [
            *out,
            AnswerOffer(
                _str(msg["sdp"]),
                renegotiate=msg.get("renegotiate") is True,
                revision=revision if isinstance(revision, int) else None,
            ),
        ]

    def _slots_map(self, entries: list[Any]) -> Emit:
        self.slots_map = {
            _str(e["mid"]): (_str(e["channel"]), int(e["channel_slot"])) for e in entries
        }
        mapped = {mid: {"channel": c, "slot": s} for mid, (c, s) in self.slots_map.items()}
        return Emit({"event": "slots_map", "slots_map": mapped})

    def _on_monitored(self, msg: dict[str, Any]) -> list[Action]:
        channels = [_str(c) for c in msg["channels"]]
        return [Emit({"event": "monitored", "channels": channels})]

    def _on_talk_target_set(self, msg: dict[str, Any]) -> list[Action]:
        event = {
            "event": "talk_target_set",
            "channels": [_str(c) for c in msg["channels"]],
            "user": msg.get("user"),
            "kind": _str(msg.get("kind", "speech")),
        }
        return [Emit(event)]

    def _on_routed(self, msg: dict[str, Any]) -> list[Action]:
        return [
            Emit(
                {
                    "event": "routed",
                    "sends": [str(c) for c in msg.get("sends", [])],
                    "hears": [str(c) for c in msg.get("hears", [])],
                }
            )
        ]

    def _on_participant_joined(self, msg: dict[str, Any]) -> list[Action]:
        p = _participant(msg["participant"])
        self.participants[p["id"]] = p
        return [Emit({"event": "participant_joined", "participant": p})]

    def _on_participant_left(self, msg: dict[str, Any]) -> list[Action]:
        p = _participant(msg["participant"])
        self.participants.pop(p["id"], None)
        return [Emit({"event": "participant_left", "participant": p, "reason": msg.get("reason")})]

    def _on_talk(self, msg: dict[str, Any]) -> list[Action]:
        speaker = _participant(msg["speaker"])
        slot = int(msg["slot"])
        started = msg["type"] == "talk_started"
        speaker = {**speaker, "talking": started, "slot": slot if started else None}
        if self.you is not None and speaker["id"] == self.you["id"]:
            self.you = speaker
        if speaker["id"] in self.participants:
            self.participants[speaker["id"]] = speaker
        event = {"event": msg["type"], "speaker": speaker, "slot": slot}
        if isinstance(msg.get("channel"), str):  # whose slot (a monitored channel's, maybe)
            event["channel"] = msg["channel"]
        if started:
            event["priority"] = int(msg.get("priority", 1))
            event["kind"] = str(msg.get("kind", "speech"))
        return [Emit(event)]

    def _on_preempted(self, msg: dict[str, Any]) -> list[Action]:
        by = _participant(msg["by"])
        slot = msg.get("slot")
        event = {
            "slot": int(slot) if slot is not None else None,
            "channel": _str(msg["channel"]),
            "by": by,
        }
        return [Emit({"event": "preempted", **event})]

    def _on_talk_right(self, msg: dict[str, Any]) -> list[Action]:
        right, level = str(msg["talk_right"]), int(msg["priority"])
        return [Emit({"event": "talk_right", "talk_right": right, "priority": level})]

    def _on_duck(self, msg: dict[str, Any]) -> list[Action]:
        db, slot, channel = int(msg["db"]), int(msg["slot"]), _str(msg["channel"])
        event = {"event": "duck", "db": db, "slot": slot, "channel": channel}
        mid = str(slot) if self.slots_map is not None else None
        return [Duck(db, slot, channel, mid), Emit(event)]

    def _on_slot_busy(self, msg: dict[str, Any]) -> list[Action]:
        return [Emit({"event": "slot_busy", "slots": int(msg["slots"])})]

    def _on_token_expiring(self, msg: dict[str, Any]) -> list[Action]:
        return [NeedToken(int(msg["expires_at"]))]

    def _on_refreshed(self, msg: dict[str, Any]) -> list[Action]:
        self.token_expires_at = int(msg["expires_at"])
        return [Emit({"event": "refreshed", "expires_at": self.token_expires_at})]

    def _on_left(self, msg: dict[str, Any]) -> list[Action]:
        ok = self.state is SessionState.LEAVING
        self.state = SessionState.ENDED
        return [End(ok=ok, reason=str(msg.get("reason", "left")))]

    def _on_pong(self, msg: dict[str, Any]) -> list[Action]:
        return []

    def _on_emergency_update(self, msg: dict[str, Any]) -> list[Action]:
        state = _str(msg["state"])
        subject = str(msg.get("subject", ""))
        event = {
            "event": "emergency_update",
            "id": _str(msg["id"]),
            "state": state,
            "by": str(msg.get("by", "")),
            "subject": subject,
        }
        if msg.get("resolution"):
            event["resolution"] = str(msg["resolution"])
        out: list[Action] = [Emit(event)]
        mine = self.you is not None and subject == self.you.get("sub")
        if mine and state == "raised" and msg.get("window_s"):
            out.append(EmergencyWindow(float(msg["window_s"])))
        elif mine and state == "resolved":
            out.append(EmergencyWindow(0.0))
        return out

    def _on_migrate(self, msg: dict[str, Any]) -> list[Action]:
        """The node is being drained: leave it for another (a fresh join: this session stays
        behind on the old node until its deadline)."""
        url = msg.get("url")
        url = url if isinstance(url, str) and url else None
        deadline = float(msg.get("deadline_s", 0))
        self.state = SessionState.ENDED
        self.session_id = None
        return [
            Emit({"event": "migrate", "url": url, "deadline_s": deadline}),
            Move(url),
            End(ok=False, reason="migrate", retry=True),
        ]

    def _on_degraded(self, msg: dict[str, Any]) -> list[Action]:
        """The node is cut off from the rest of the cluster while the channel spans nodes: a
        fresh join on the next configured node (or the same address, behind a proxy)."""
        self.state = SessionState.ENDED
        self.session_id = None
        return [
            Emit({"event": "degraded", "channel": str(msg.get("channel", ""))}),
            Move(None),
            End(ok=False, reason="degraded", retry=True),
        ]

    def _on_error(self, msg: dict[str, Any]) -> list[Action]:
        code = _str(msg["code"])
        text = str(msg.get("message", ""))
        if msg.get("fatal") is True:
            self.state = SessionState.ENDED
            return [End(ok=False, reason=text or code, code=code)]
        warn = Warn(f"server error {code}: {text}")
        if code == "node_draining":  # the server closes the socket next: join elsewhere
            self.session_id = None
            return [warn, Move(None)]
        if code == "cluster_unavailable":  # not fatal: the socket closes next, join again
            return [warn, NodeUnavailable()]
        return [warn]


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _ice_servers(raw: Any) -> list[dict[str, Any]]:
    """The well-formed TURN relays of ``joined.ice_servers`` (at most 2); anything else (a STUN
    or public server, a malformed entry) is left out, never used."""
    found: list[dict[str, Any]] = []
    for entry in raw if isinstance(raw, list) else []:
        if not isinstance(entry, dict):
            continue
        urls, user, cred = entry.get("urls"), entry.get("username"), entry.get("credential")
        if not (
            isinstance(urls, list) and urls and isinstance(user, str) and isinstance(cred, str)
        ):
            continue
        if all(isinstance(u, str) and u.startswith(("turn:", "turns:")) for u in urls):
            found.append({"urls": urls[:4], "username": user, "credential": cred})
    return found[:2]


def _participant(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise TypeError("participant is not an object")
    slot = raw.get("slot")
    return {
        "id": _str(raw["id"]),
        "sub": str(raw.get("sub", "")),
        "name": str(raw.get("name", "")),
        "device_id": str(raw.get("device_id", "")),
        "talking": bool(raw.get("talking", False)),
        "slot": int(slot) if slot is not None else None,
        "monitoring": bool(raw.get("monitoring", False)),
    }


_HANDLERS = {
    "joined": ClientSession._on_joined,
    "offer": ClientSession._on_offer,
    "routed": ClientSession._on_routed,
    "monitored": ClientSession._on_monitored,
    "talk_target_set": ClientSession._on_talk_target_set,
    "participant_joined": ClientSession._on_participant_joined,
    "participant_left": ClientSession._on_participant_left,
    "talk_started": ClientSession._on_talk,
    "talk_stopped": ClientSession._on_talk,
    "slot_busy": ClientSession._on_slot_busy,
    "preempted": ClientSession._on_preempted,
    "duck": ClientSession._on_duck,
    "talk_right": ClientSession._on_talk_right,
    "token_expiring": ClientSession._on_token_expiring,
    "refreshed": ClientSession._on_refreshed,
    "left": ClientSession._on_left,
    "migrate": ClientSession._on_migrate,
    "degraded": ClientSession._on_degraded,
    "pong": ClientSession._on_pong,
    "emergency_update": ClientSession._on_emergency_update,
    "error": ClientSession._on_error,
}


def websocket_url(server: str) -> str:
    """The signaling URL for ``--server``: http(s)/ws(s) base URL -> ``ws(s)://host/.../ws``.

    Raises ValueError with a one-line reason for anything else.
    """
    try:
        parts = urlsplit(server.strip())
        port = parts.port  # validates the port
    except ValueError as exc:
        raise ValueError(f"bad server URL {server!r}: {exc}") from None
    scheme = {"http": "ws", "ws": "ws", "https": "wss", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"bad server URL {server!r}: use http://, https://, ws:// or wss://")
    if not parts.hostname:
        raise ValueError(f"bad server URL {server!r}: no host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"bad server URL {server!r}: no query, fragment or credentials allowed")
    path = parts.path.rstrip("/")
    if not path.endswith("/ws"):
        path += "/ws"
    if port == 0:
        raise ValueError(f"bad server URL {server!r}: port 0")
    return urlunsplit((scheme, parts.netloc, path, "", ""))
