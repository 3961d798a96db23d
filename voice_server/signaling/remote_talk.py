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
from collections.abc import Iterable
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


class RemotePeople:
    """Sessions of other nodes: session id -> (node, participant, channel); bounded (the oldest
    forgotten first, counted)."""

    def __init__(self, limit: int = MAX_REMOTE) -> None:
        self.limit = limit
        self.dropped = 0
        self._people: OrderedDict[str, tuple[str, Participant, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._people)

    def get(self, session_id: str) -> Participant | None:
        entry = self._people.get(session_id)
        return entry[1] if entry is not None else None

    def add(self, origin: str, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            try:
                person = Participant(
                    id=row["id"], sub=row["sub"], name=row["name"], device_id=row["device_id"]
                )
            except (KeyError, ValidationError):
                continue
            self._people[person.id] = (origin, person, str(row["channel"]))
            self._people.move_to_end(person.id)
            if len(self._people) > self.limit:
                self._people.popitem(last=False)
                self.dropped += 1

    def replace(self, origin: str, rows: Iterable[dict[str, Any]]) -> None:
        """Everything ``origin`` has now."""
        self.retain_nodes(lambda node: node != origin)
        self.add(origin, rows)

    def gone(self, origin: str, session_ids: Iterable[str]) -> None:
        for sid in session_ids:
            entry = self._people.get(sid)
            if entry is not None and entry[0] == origin:
                del self._people[sid]

    def retain_nodes(self, keep: Any) -> None:
        """Forget the people of every node ``keep(node)`` refuses."""
        for sid in [s for s, (node, _, _) in self._people.items() if not keep(node)]:
            del self._people[sid]
