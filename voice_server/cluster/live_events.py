"""The live view's cross-node events (pure): what a node publishes on the ``live`` topic
(README "Live view across nodes") and what a subscriber accepts.

Every event is a JSON object ``{"v": 1, "origin": <node id>, "inc": <incarnation>, "kind": …}``
with, by kind:

- ``presence``: ``channel`` and ``participants`` (the origin's own participants of that channel,
  as the live view shows them; an empty list: none left there);
- ``state``: ``channels`` (channel → participants: everything the origin has);
- ``line``: ``channel`` and ``line`` (a caption: a ``partial`` or an ``utterance``);
- ``sync``: nothing (the origin lost its subscription: the others answer with their ``state``).

:func:`decode` returns None for our own events and for anything malformed (skipped, never
raised: one bad publisher cannot stop a subscriber).
"""

from __future__ import annotations

from typing import Any

from voice_server.cluster.topic import VERSION, Incoming, encode, envelope

__all__ = ["TOPIC", "VERSION", "Incoming", "decode", "encode"]

TOPIC = "live"
KINDS = frozenset({"presence", "state", "line", "sync"})


def decode(event: dict[str, Any], self_id: str) -> Incoming | None:
    """Another node's event, checked; None for ours or a malformed one."""
    incoming = envelope(event, self_id, KINDS)
    return incoming if incoming is not None and _valid(incoming.body) else None


def _rows(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(r, dict) for r in value)


def _valid(body: dict[str, Any]) -> bool:
    kind = body["kind"]
    if kind == "sync":
        return True
    if kind == "state":
        chans = body.get("channels")
        return isinstance(chans, dict) and all(
            isinstance(c, str) and _rows(r) for c, r in chans.items()
        )
    if not isinstance(body.get("channel"), str):
        return False
    if kind == "presence":
        return _rows(body.get("participants"))
    return isinstance(body.get("line"), dict)  # line
