"""One node's standing in the cluster while it runs (``serve --redis-url``).

:class:`NodeMembership` holds the node's local truth — its sessions and their channels, the
channel leases it owns, whether it is draining — and one loop that writes that truth to Redis:
every heartbeat the node's report (load: its sessions; state: ready or draining) and the renewal
of its leases; at once after a local change, and every ``reassert_s`` in full, its channel →
nodes entries and its sessions' presence records (they expire ``session_ttl_s`` after the last
write: a dead node leaves no ghost). Local changes never wait on Redis: a join or leave only
updates the local truth and wakes the loop; whatever Redis missed while away is written again
when it returns.

The join path calls :meth:`admit` (the one Redis call a join waits for, bounded by
``admit_timeout_s``): refused at once with :class:`ClusterUnavailable` while the link is down,
else the channel's owner is claimed through the fenced ownership (this node on the channel's
first join anywhere, or whoever holds it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from voice_server.cluster.channel_map import ChannelMap
from voice_server.cluster.client import ClusterUnavailable, cancelled_meanwhile
from voice_server.cluster.keys import Keys
from voice_server.cluster.link import LinkState
from voice_server.cluster.nodes import DuplicateNode, NodeInfo, NodeRegistry
from voice_server.cluster.ownership import ChannelOwnership, Owner
from voice_server.cluster.sessions import SessionPlacement
from voice_server.cluster.timing import Timing

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["NodeMembership"]

log = logging.getLogger("voice_server.cluster.membership")
ADMIT_TIMEOUT_S = 1.0
MAX_GONE = 10_000  # ended sessions whose records wait for Redis, at most (then they expire)


class NodeMembership:
    def __init__(
        self,
        client: Redis,
        keys: Keys,
        timing: Timing,
        *,
        node_id: str,
        incarnation: str,
        base_url: str,
        admit_timeout_s: float = ADMIT_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node_id = node_id
        self.incarnation = incarnation
        self.base_url = base_url
        self.timing = timing
        self.registry = NodeRegistry(client, keys, timing)
        self.ownership = ChannelOwnership(client, keys, timing, node_id, incarnation)
        self.map = ChannelMap(client, keys, timing, node_id)
        self.placement = SessionPlacement(client, keys, timing)
        self.link = LinkState()
        self.admit_timeout_s = admit_timeout_s
        self.state = "ready"  # or "draining"
        self.owned: dict[str, Owner] = {}  # channel -> this node's lease
        #: channel -> its owner as last seen, for every channel with a session here
        self.owners: dict[str, Owner] = {}
        #: the media relay's "index incarnation host port" this node reports (empty: none)
        self.relay = ""
        self.reowned = 0  # channels claimed here after their owner's lease ended
        self.leases_lost = 0
        self.gone_dropped = 0  # ended sessions whose record removal was given up (they expire)
        self.duplicate: str | None = None  # why the last heartbeat was refused as a duplicate
        self._clock = clock
        self._sessions: dict[str, str] = {}  # session id -> channel
        #: session id -> the other channels its route touches (a console's), counted in refs
        self._extra: dict[str, frozenset[str]] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()  # ended, record not yet removed
        self._dirty: set[str] = set()  # channels whose count changed since the last write
        self._fresh: set[str] = set()  # sessions joined since the last write
        self._wake = asyncio.Event()
        self._last_full = float("-inf")

    # ------------------------------------------------------------------ the join path
    async def admit(self, channel: str) -> Owner:
        """Before a new session of ``channel`` is set up: its owner (claimed for this node when
        the channel has none). Raises ClusterUnavailable at once while the link is down, or
        when Redis does not answer within ``admit_timeout_s``."""
        if not self.link.up:
            raise ClusterUnavailable("the cluster store (Redis) is unreachable")
        try:
            owner = await asyncio.wait_for(self.ownership.acquire(channel), self.admit_timeout_s)
        except (ClusterUnavailable, TimeoutError) as exc:
            self._failed("admit", exc)
            raise ClusterUnavailable("the cluster store (Redis) did not answer") from exc
        self.link.ok(self._clock())
        if owner.is_node(self.node_id, self.incarnation):
            self.owned[channel] = owner
        self.owners[channel] = owner
        return owner

    def joined(self, session_id: str, channel: str) -> None:
        """A new session is set up here (no Redis call: the loop writes it)."""
        if session_id in self._sessions:
            return
        self._sessions[session_id] = channel
        self._fresh.add(session_id)
        self._gone.pop(session_id, None)
        self.map.refs.add(channel)
        self._dirty.add(channel)
        self._wake.set()

    def routed(self, session_id: str, channels: frozenset[str]) -> None:
        """The session's route now touches ``channels`` (its own channel among them or not):
        the others count as channels this node has a session of, so that their owners send it
        their audio and it knows their owners (no Redis call: the loop writes it)."""
        channel = self._sessions.get(session_id)
        if channel is None:
            return
        old = self._extra.get(session_id, frozenset())
        new = frozenset(c for c in channels if c != channel)
        for c in new - old:
            self.map.refs.add(c)
            self._dirty.add(c)
        for c in old - new:
            self.map.refs.remove(c)
            self._dirty.add(c)
        if new:
            self._extra[session_id] = new
        else:
            self._extra.pop(session_id, None)
        if new != old:
            self._wake.set()

    def ended(self, session_id: str) -> None:
        channel = self._sessions.get(session_id)
        if channel is None:
            return
        self.routed(session_id, frozenset())
        del self._sessions[session_id]
        self.map.refs.remove(channel)
        self._dirty.add(channel)
        self._gone[session_id] = None
        if len(self._gone) > MAX_GONE:
            self._gone.popitem(last=False)
            self.gone_dropped += 1
        self._wake.set()

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    def set_state(self, state: str) -> None:
        """``draining`` (no new joins here) is reported with the next heartbeat, sent now."""
        self.state = state
        self._wake.set()

    async def live_nodes(self) -> list[NodeInfo]:
        return await self.registry.live_nodes()

    # ------------------------------------------------------------------ the loop
    async def run(self) -> None:
        """Report until cancelled; a failed round is tried again a heartbeat later."""
        while True:
            await self.step()
            try:
                await asyncio.wait_for(self._wake.wait(), self.timing.heartbeat_s)
            except TimeoutError:
                pass

    async def step(self) -> None:
        """One round: heartbeat and lease renewals, then the channel entries and presence
        records that changed (all of them every ``reassert_s``)."""
        self._wake.clear()
        try:
            await self._heartbeat()
            await self._renew()
            await self._follow()
            await self._write_changes()
            await self._forget_gone()
        except ClusterUnavailable as exc:
            if cancelled_meanwhile():  # redis-py may turn our cancellation into a timeout
                raise asyncio.CancelledError from exc
            self._failed("step", exc)
        except DuplicateNode as exc:
            self.duplicate = str(exc)
            self._failed("heartbeat", exc)
        except Exception as exc:  # a Redis error reply (misconfigured Redis): log, try again
            log.exception("cluster step failed")
            self._failed("step", exc)
        else:
            self.duplicate = None
            if self.link.ok(self._clock()):
                log.info("cluster link up node=%s", self.node_id)

    async def leave(self) -> None:
        """A clean stop: leases released, records removed, the report withdrawn (best effort:
        whatever is left expires)."""
        for sid in list(self._sessions):
            self.ended(sid)
        try:
            for lease in list(self.owned.values()):
                await self.ownership.release(lease)
            self.owned.clear()
            await self.map.write(sorted(self._dirty))
            await self._forget_gone()
            await self.registry.leave(self.node_id, incarnation=self.incarnation)
        except ClusterUnavailable as exc:
            log.warning("cluster leave incomplete (%s): the rest expires", exc)

    async def _heartbeat(self) -> None:
        await self.registry.heartbeat(
            self.node_id,
            float(len(self._sessions)),
            self.base_url,
            incarnation=self.incarnation,
            epoch_floor=self.ownership.max_epoch,
            state=self.state,
            relay=self.relay,
        )

    async def _renew(self) -> None:
        # a lease of a channel without a session here is given up
        for channel in [c for c in self.owned if self.map.refs.count(c) == 0]:
            await self.ownership.release(self.owned.pop(channel))
        leases = list(self.owned.values())
        for lease, kept in zip(leases, await self.ownership.renew_all(leases), strict=True):
            if not kept:  # expired (Redis away too long) and maybe owned by another now
                self.leases_lost += 1
                self.owned.pop(lease.channel, None)
                # claimed again while its sessions are here: a new epoch, unless another has it
                again = await self.ownership.acquire(lease.channel)
                if again.is_node(self.node_id, self.incarnation):
                    self.owned[lease.channel] = again
                log.warning(
                    "cluster lease lost channel=%s epoch=%d; now %s epoch %d",
                    lease.channel, lease.epoch, again.node_id, again.epoch,
                )  # fmt: skip

    async def _follow(self) -> None:
        """The owner of each channel with a session here and an owner elsewhere, read again; a
        channel whose owner's lease ended (its node died, or its last session there left) is
        claimed here with a new epoch (one script call for them all: the first node to ask
        gets each; while Redis recovers from an absence, a live owner's channels are left for
        it to claim back: :mod:`.ownership`)."""
        here = {channel for channel, _ in self.map.refs.items()}
        for channel in [c for c in self.owners if c not in here]:
            del self.owners[channel]
        for channel in here & set(self.owned):
            self.owners[channel] = self.owned[channel]
        foreign = sorted(here - set(self.owned))
        for owner in await self.ownership.acquire_all(foreign):
            channel = owner.channel
            before = self.owners.get(channel)
            self.owners[channel] = owner
            if owner.is_node(self.node_id, self.incarnation):
                self.owned[channel] = owner
                if before is not None and not before.is_node(self.node_id, self.incarnation):
                    self.reowned += 1
                    log.warning(
                        "cluster channel=%s re-owned here epoch=%d (was %s epoch %d)",
                        channel, owner.epoch, before.node_id, before.epoch,
                    )  # fmt: skip

    async def _write_changes(self) -> None:
        """The channel entries whose counts changed (a count of 0: the entry goes) and the
        presence of new sessions; every ``reassert_s`` all entries and all presence records."""
        now = self._clock()
        full = now - self._last_full >= self.timing.reassert_s
        dirty, fresh = sorted(self._dirty), sorted(self._fresh)
        self._dirty.clear()
        self._fresh.clear()
        try:
            if full:
                await self.map.write([c for c in dirty if self.map.refs.count(c) == 0])
                await self.map.reassert()
                await self._hold(sorted(self._sessions))
                self._last_full = now
            else:
                await self.map.write(dirty)
                await self._hold(fresh)
        except ClusterUnavailable:
            self._dirty.update(dirty)
            self._fresh.update(fresh)
            raise

    async def _hold(self, session_ids: list[str]) -> None:
        items = [(sid, self._sessions[sid]) for sid in session_ids if sid in self._sessions]
        for sid in await self.placement.hold_all(self.node_id, items):
            log.warning("cluster session=%s is held by another node", sid)

    async def _forget_gone(self) -> None:
        gone = list(self._gone)
        if gone:
            await self.placement.remove_all(self.node_id, gone)
            for sid in gone:
                self._gone.pop(sid, None)

    def _failed(self, what: str, exc: BaseException) -> None:
        if self.link.failed(self._clock()):
            log.warning("cluster link down (%s: %s)", what, exc)
