"""What the hub knows of other nodes' sessions, and what it sends them (README "Channels across
nodes").

With a channel spanning nodes, its owner's router decides its talk events; the hub of the owner
names a talker from another node by the participant that node published
(:class:`RemotePeople`), and hands every talk event to the cluster (:class:`TalkOut`), which
delivers it to the hearers on the other nodes, or to one session there (``slot_busy``,
``preempted``). :func:`parse_relayed` turns such a message back into its model on the receiving
node; only the talk messages are taken.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Protocol

from pydantic import Field, TypeAdapter, ValidationError

from voice_server.signaling.messages import (
    Participant,
    ServerDuck,
    ServerMessage,
    ServerPreempted,
    ServerSlotBusy,
    ServerTalkStarted,
    ServerTalkStopped,
)

__all__ = ["MAX_REMOTE", "RemotePeople", "TalkOut", "parse_relayed"]

MAX_REMOTE = 100_000

Relayed = Annotated[
    ServerTalkStarted | ServerTalkStopped | ServerDuck | ServerSlotBusy | ServerPreempted,
    Field(discriminator="type"),
]
_relayed: TypeAdapter[Any] = TypeAdapter(Relayed)


def parse_relayed(obj: Any) -> ServerMessage | None:
    """A talk message another node sent; None when it is not one (dropped)."""
    try:
        message: ServerMessage = _relayed.validate_python(obj)
    except ValidationError:
        return None
    return message


class TalkOut(Protocol):
    """The cluster's side (``cluster/talk_relay.py``): never waits."""

    def hear(
        self,
        channel: str,
        message: ServerMessage,
        only: frozenset[str] | None,
        exclude: str | None,
    ) -> None:
        """To the hearers of ``channel`` on the other nodes."""

    def to(self, session_id: str, message: ServerMessage) -> None:
        """To a session of another node."""


#: told of each change of :class:`RemotePeople`: (channel, participant, joined)
Changed = Callable[[str, Participant, bool], None]


class RemotePeople:
    """Sessions of other nodes: session id -> (node, participant, channel); bounded (the oldest
    forgotten first, counted). ``on_change`` hears of each person that comes into a channel
    (``True``) or leaves it (``False``), so the hub can tell this node's members of the channel
    (their people lists show colleagues on every node)."""

    def __init__(self, limit: int = MAX_REMOTE, on_change: Changed | None = None) -> None:
        self.limit = limit
        self.dropped = 0
        self.on_change = on_change
        self._people: OrderedDict[str, tuple[str, Participant, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._people)

    def get(self, session_id: str) -> Participant | None:
        entry = self._people.get(session_id)
        return entry[1] if entry is not None else None

    def in_channel(self, channel: str) -> list[Participant]:
        return [person for _, person, c in self._people.values() if c == channel]

    def _tell(self, channel: str, person: Participant, joined: bool) -> None:
        if self.on_change is not None:
            self.on_change(channel, person, joined)

    def _drop(self, session_id: str) -> None:
        _, person, channel = self._people.pop(session_id)
        self._tell(channel, person, False)

    def add(self, origin: str, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            try:
                person = Participant(
                    id=row["id"], sub=row["sub"], name=row["name"], device_id=row["device_id"]
                )
                channel = str(row["channel"])
            except (KeyError, ValidationError):
                continue
            before = self._people.get(person.id)
            if before is not None and before[2] != channel:
                self._drop(person.id)  # moved to another channel on its node
                before = None
            self._people[person.id] = (origin, person, channel)
            self._people.move_to_end(person.id)
            if before is None:
                self._tell(channel, person, True)
            if len(self._people) > self.limit:
                self._drop(next(iter(self._people)))
                self.dropped += 1

    def replace(self, origin: str, rows: Iterable[dict[str, Any]]) -> None:
        """Everything ``origin`` has now."""
        rows = list(rows)
        now = {row.get("id") for row in rows if isinstance(row, dict)}
        for sid in [s for s, (node, _, _) in self._people.items() if node == origin]:
            if sid not in now:
                self._drop(sid)
        self.add(origin, rows)

    def gone(self, origin: str, session_ids: Iterable[str]) -> None:
        for sid in session_ids:
            entry = self._people.get(sid)
            if entry is not None and entry[0] == origin:
                self._drop(sid)

    def retain_nodes(self, keep: Any) -> None:
        """Forget the people of every node ``keep(node)`` refuses."""
        for sid in [s for s, (node, _, _) in self._people.items() if not keep(node)]:
            self._drop(sid)
