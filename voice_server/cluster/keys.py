"""The Redis key layout of one deployment (pure).

Every key starts with the deployment's prefix in braces, ``{voice}:…`` by default: a Redis
Cluster hashes only the part in braces, so all of one deployment's keys share one slot and the
Lua scripts that touch several of them stay valid there too. After the prefix comes the kind of
key, then its subject (node id, channel, session id), so two kinds never collide whatever a
channel is called::

    {p}:nodes                 sorted set: node id → Redis time (ms) of its last heartbeat
    {p}:node:<node>           hash: incarnation, load, base_url, seen_ms, state (expires after TTL)
    {p}:epoch                 counter: the last owner epoch handed out (never expires)
    {p}:owner:<channel>       hash: node, incarnation, epoch (expires unless renewed: the lease)
    {p}:chan:<channel>        sorted set: node id → Redis time (ms) its entry expires
    {p}:chanrefs:<channel>    hash: node id → sessions of that node in the channel
    {p}:session:<session>     hash: node, channel (expires unless refreshed)
    {p}:inbox:<node>          stream: control messages to that node
    {p}:events:<topic>        pub/sub channel: cross-node events of a topic
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DEFAULT_PREFIX", "Keys"]

DEFAULT_PREFIX = "voice"
_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix):
            raise ValueError("a cluster key prefix is 1-64 of A-Z a-z 0-9 _ . -")

    @property
    def root(self) -> str:
        return "{" + self.prefix + "}"

    @property
    def nodes(self) -> str:
        return f"{self.root}:nodes"

    def node(self, node_id: str) -> str:
        return f"{self.root}:node:{node_id}"

    @property
    def epoch(self) -> str:
        return f"{self.root}:epoch"

    @property
    def pulse(self) -> str:
        """Redis's time of the last script call of any node (a Redis left alone longer than a
        lease has just been away: its leases ran out through nobody's fault)"""
        return f"{self.root}:pulse"

    @property
    def recovering(self) -> str:
        """set for a lease's length after such an absence"""
        return f"{self.root}:recovering"

    @property
    def relay_indexes(self) -> str:
        """node id -> its media relay's index (0-255), kept for good"""
        return f"{self.root}:relay_index"

    def owner(self, channel: str) -> str:
        return f"{self.root}:owner:{channel}"

    def last_owner(self, channel: str) -> str:
        """the channel's last owner and epoch, kept after its lease ends (a day)"""
        return f"{self.root}:lastowner:{channel}"

    def channel_nodes(self, channel: str) -> str:
        return f"{self.root}:chan:{channel}"

    def channel_refs(self, channel: str) -> str:
        return f"{self.root}:chanrefs:{channel}"

    def session(self, session_id: str) -> str:
        return f"{self.root}:session:{session_id}"

    def inbox(self, node_id: str) -> str:
        return f"{self.root}:inbox:{node_id}"

    def events(self, topic: str) -> str:
        return f"{self.root}:events:{topic}"

    def topic_of(self, pubsub_channel: str) -> str:
        """The topic of an ``events`` pub/sub channel name (ValueError: not one of ours)."""
        head = f"{self.root}:events:"
        if not pubsub_channel.startswith(head):
            raise ValueError(f"not an event channel of {self.root}: {pubsub_channel!r}")
        return pubsub_channel[len(head) :]
