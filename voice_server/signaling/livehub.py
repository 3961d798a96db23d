"""The dashboard's live view of a channel: who is online, who is talking, partial captions and
utterances as they are committed, fanned out to the viewers of that channel.

Fed on the event loop by the signaling hub (``Hub.watchers``: every channel broadcast — joins,
leaves, talk start/stop — becomes a presence snapshot) and by the transcriber link
(``LinkHub.on_partial`` / ``on_committed``). Feeding only appends to each viewer's bounded queue:
when a viewer cannot keep up, its oldest messages are dropped and counted (the viewer is told
how many), so voice and signaling never wait on a slow browser.

In a cluster (README "Live view across nodes"), ``publish`` hands every change of this node's
part (a channel's local participants, a caption line) to the cluster's event relay, which must
not wait, and the relay feeds other nodes' parts back through :meth:`LiveHub.on_remote`: a
channel's presence is this node's participants followed by the other nodes' (each tagged with
its ``node``), and remote caption lines reach the same viewers as local ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any

from voice_server.calllog.localtime import local_text
from voice_server.calllog.model import parse_time
from voice_server.metrics import Family
from voice_server.signaling.hub import Hub
from voice_server.signaling.liveremote import RemoteLive
from voice_server.signaling.messages import ServerMessage
from voice_server.signaling.sessions import SessionState

__all__ = ["LiveHub", "Viewer"]

log = logging.getLogger(__name__)
TEXT_MAX = 2000


class Viewer:
    """One live-view connection: a bounded queue that drops its oldest message when full."""

    def __init__(self, channel: str, limit: int) -> None:
        self.channel = channel
        self.limit = limit
        self.queue: deque[str] = deque()
        self.dropped = 0
        self.wake = asyncio.Event()

    def offer(self, text: str) -> bool:
        """Queue ``text``; False when an older message had to be dropped for it."""
        kept = True
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.dropped += 1
            kept = False
        self.queue.append(text)
        self.wake.set()
        return kept


@dataclass(slots=True)
class LiveCounters:
    sent: int = 0
    dropped: int = 0
    opened: int = 0


class LiveHub:
    def __init__(self, hub: Hub, tz: tzinfo, queue_limit: int) -> None:
        self._hub = hub
        self._tz = tz
        self._limit = queue_limit
        self._viewers: dict[str, set[Viewer]] = {}
        self.counters = LiveCounters()
        #: in a cluster: this node's id, and where its changes go (must not wait)
        self.node_id: str | None = None
        self.publish: Callable[[dict[str, Any]], None] | None = None
        self.remote = RemoteLive()

    # ------------------------------------------------------------------ viewers
    def attach(self, channel: str) -> Viewer:
        viewer = Viewer(channel, self._limit)
        self._viewers.setdefault(channel, set()).add(viewer)
        self.counters.opened += 1
        viewer.offer(self._encode(self.presence(channel)))
        return viewer

    def detach(self, viewer: Viewer) -> None:
        viewers = self._viewers.get(viewer.channel)
        if viewers is not None:
            viewers.discard(viewer)
            if not viewers:
                del self._viewers[viewer.channel]

    def viewers(self, channel: str) -> int:
        return len(self._viewers.get(channel, ()))

    # ------------------------------------------------------------------ feeds (event loop)
    def on_signal(self, channel: str, message: ServerMessage) -> None:
        """A broadcast in ``channel`` (someone joined, left, started or stopped talking)."""
        self._changed(channel)

    def _changed(self, channel: str) -> None:
        if channel in self._viewers:
            self._fan(channel, self.presence(channel))
        if self.publish is not None:
            self.publish(
                {"kind": "presence", "channel": channel, "participants": self._local(channel)}
            )

    def on_partial(self, msg: dict[str, Any]) -> None:
        channel = str(msg.get("channel", ""))
        if channel not in self._viewers and self.publish is None:
            return
        speaker = str(msg.get("speaker_id", ""))
        self._line(
            channel,
            {
                "type": "partial",
                "id": str(msg.get("id", "")),
                "speaker_id": speaker,
                "speaker_name": self._name_of(channel, speaker),
                "text": str(msg.get("text", ""))[:TEXT_MAX],
            },
        )

    def on_committed(self, msg: dict[str, Any]) -> None:
        u = msg.get("utterance")
        if not isinstance(u, dict):
            return
        if str(u.get("channel", "")) not in self._viewers and self.publish is None:
            return
        try:
            start = local_text(parse_time(str(u.get("start", ""))), self._tz)
        except ValueError:
            start = ""
        self._line(
            str(u["channel"]),
            {
                "type": "utterance",
                "id": str(u.get("id", "")),
                "speaker_id": str(u.get("speaker_id", "")),
                "speaker_name": str(u.get("speaker_name", "")),
                "time": start,
                "text": str(u.get("text", ""))[:TEXT_MAX],
            },
        )

    def _line(self, channel: str, payload: dict[str, Any]) -> None:
        if self.node_id is not None:
            payload["node"] = self.node_id
        self._fan(channel, payload)
        if self.publish is not None:
            self.publish({"kind": "line", "channel": channel, "line": payload})

    # ------------------------------------------------------------------ other nodes (cluster)
    def on_remote(self, origin: str, incarnation: str, event: dict[str, Any]) -> None:
        """An event of another node (decoded by the relay): its presence in a channel, its full
        state, or a caption line."""
        kind = event["kind"]
        if kind == "presence":
            self._refresh(
                self.remote.update(origin, incarnation, event["channel"], event["participants"])
            )
        elif kind == "state":
            self._refresh(self.remote.replace(origin, incarnation, event["channels"]))
        elif kind == "line" and event["channel"] in self._viewers:
            self._fan(event["channel"], {**event["line"], "node": origin})

    def retain_remote(self, live: set[str]) -> None:
        """Forget the other nodes not in ``live`` (one that died without a word)."""
        self._refresh(self.remote.retain(live))

    def clear_remote(self) -> None:
        """Forget every other node's part (the relay lost its subscription: they resend)."""
        self._refresh(self.remote.clear())

    def local_state(self) -> dict[str, list[dict[str, Any]]]:
        """This node's part of every channel where it has sessions."""
        channels = sorted({s.channel for s in self._hub.registry})
        return {channel: self._local(channel) for channel in channels}

    def _refresh(self, channels: set[str]) -> None:
        for channel in sorted(channels):
            if channel in self._viewers:
                self._fan(channel, self.presence(channel))

    # ------------------------------------------------------------------ helpers
    def presence(self, channel: str) -> dict[str, Any]:
        return {
            "type": "presence",
            "participants": self._local(channel) + self.remote.participants(channel),
        }

    def _local(self, channel: str) -> list[dict[str, Any]]:
        sessions = sorted(self._hub.registry.in_channel(channel), key=lambda s: (s.name, s.id))
        node = {} if self.node_id is None else {"node": self.node_id}
        return [
            {
                "sub": s.sub,
                "name": s.name,
                "device_id": s.device_id,
                "online": s.state is SessionState.ATTACHED,
                "talking": s.talking_slot is not None,
                "diag": self._diag(s.id),
                **node,
            }
            for s in sessions
        ]

    def on_stats(self, channel: str) -> None:
        """A participant's diagnostics changed (at most every few seconds each)."""
        self._changed(channel)

    def _diag(self, session_id: str) -> dict[str, object] | None:
        report = self._hub.diagnostics.get(session_id)
        return report.as_dict() if report is not None else None

    def _name_of(self, channel: str, sub: str) -> str:
        for session in self._hub.registry.in_channel(channel):
            if session.sub == sub:
                return session.name
        return sub

    @staticmethod
    def _encode(payload: dict[str, Any]) -> str:
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))

    def _fan(self, channel: str, payload: dict[str, Any]) -> None:
        text = self._encode(payload)
        for viewer in self._viewers.get(channel, ()):
            if not viewer.offer(text):
                self.counters.dropped += 1

    def families(self) -> list[Family]:
        c = self.counters
        return [
            Family("voice_live_viewers", "gauge", "Open live-view connections").add(
                sum(len(v) for v in self._viewers.values())
            ),
            Family("voice_live_opened_total", "counter", "Live views opened").add(c.opened),
            Family("voice_live_messages_total", "counter", "Live-view messages sent").add(c.sent),
            Family(
                "voice_live_dropped_total", "counter", "Live-view messages dropped (slow viewer)"
            ).add(c.dropped),
        ]
