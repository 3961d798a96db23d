"""The talk events of channels that span nodes (pure; README "Channels across nodes").

A channel's talk events (``talk_started``, ``talk_stopped``, ``duck``) are decided by its one
arbiter, the router of the node that owns the channel; its hearers on other nodes, and a talker
on another node told ``slot_busy`` or ``preempted``, get them through the deployment's ``talk``
topic. The owner must also know who a talker from another node is (for ``talk_started``'s
speaker and the call-log row), so every node publishes its sessions as participants.

Every event is ``{"v": 1, "origin": <node id>, "inc": <incarnation>, "kind": …}`` with, by kind:

- ``who``: ``people`` (rows: ``participant`` objects with a ``channel``): sessions of the origin;
- ``gone``: ``sessions`` (ids): sessions that ended on the origin;
- ``state``: ``people``: everything the origin has (it replaces what was known of it);
- ``sync``: nothing (the origin lost its subscription: the others answer with ``state``);
- ``hear``: ``channel``, ``message`` (a server message object) and ``only`` (a direct talk's
  session ids, or null): for every hearer of the channel on the other nodes;
- ``to``: ``session`` and ``message``: for one session, wherever it is;
- ``listen``: ``channel``: the origin's first session of it (its owner updates its relay
  targets now, not at its next round).

:func:`decode` returns None for our own events and anything malformed (skipped, never raised).
Only the messages in :data:`RELAYED` are accepted in ``hear`` and ``to``.
"""

from __future__ import annotations

from typing import Any

from voice_server.cluster.topic import VERSION, Incoming, encode, envelope

__all__ = ["KINDS", "RELAYED", "TOPIC", "VERSION", "Incoming", "decode", "encode"]

TOPIC = "talk"
KINDS = frozenset({"who", "gone", "state", "sync", "hear", "to", "listen"})
#: the server messages a node takes from another for its own sessions
RELAYED = frozenset({"talk_started", "talk_stopped", "duck", "slot_busy", "preempted"})
MAX_PEOPLE = 10_000


def decode(event: dict[str, Any], self_id: str) -> Incoming | None:
    incoming = envelope(event, self_id, KINDS)
    return incoming if incoming is not None and _valid(incoming.body) else None


def _person(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and all(isinstance(row.get(k), str) and row.get(k) for k in ("id", "channel"))
        and all(isinstance(row.get(k), str) for k in ("sub", "name", "device_id"))
    )


def _message(value: Any) -> bool:
    return isinstance(value, dict) and value.get("type") in RELAYED


def _valid(body: dict[str, Any]) -> bool:
    kind = body["kind"]
    if kind == "sync":
        return True
    if kind in ("who", "state"):
        people = body.get("people")
        return isinstance(people, list) and len(people) <= MAX_PEOPLE and all(map(_person, people))
    if kind == "gone":
        ids = body.get("sessions")
        return isinstance(ids, list) and all(isinstance(s, str) for s in ids)
    if kind == "listen":
        return isinstance(body.get("channel"), str)
    if kind == "to":
        return isinstance(body.get("session"), str) and _message(body.get("message"))
    only = body.get("only")  # hear
    return (
        isinstance(body.get("channel"), str)
        and _message(body.get("message"))
        and (only is None or (isinstance(only, list) and all(isinstance(s, str) for s in only)))
    )
