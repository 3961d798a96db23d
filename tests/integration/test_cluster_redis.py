"""The cluster coordination layer against a real redis-server (started per test on a free port
of 127.0.0.1, no persistence; killed with SIGKILL and started again where a test needs it).
Several "nodes" are several clients in one test. Every wait is on a condition."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from voice_server.bench.redisserver import RedisServer
from voice_server.cluster.channel_map import ChannelMap
from voice_server.cluster.client import ClusterUnavailable, cancelled_meanwhile, open_client
from voice_server.cluster.events import EventSubscriber, publish
from voice_server.cluster.health import RedisHealth
from voice_server.cluster.inbox import InboxReader, send
from voice_server.cluster.keys import Keys
from voice_server.cluster.messages import InboxMessage
from voice_server.cluster.nodes import DuplicateNode, NodeRegistry
from voice_server.cluster.ownership import ChannelOwnership
from voice_server.cluster.sessions import SessionPlacement
from voice_server.cluster.timing import Timing

pytestmark = pytest.mark.integration

KEYS = Keys("t")
# short enough for tests to wait on expiry, long enough for a busy machine's round trips
FAST = Timing(
    heartbeat_s=0.2, node_ttl_s=1.0, lease_s=1.0, reassert_s=0.2, channel_entry_ttl_s=1.0,
    session_ttl_s=1.0,
)  # fmt: skip
WAIT_S = 30.0


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` holds (ClusterUnavailable counts as not yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        try:
            if await check():
                return
        except ClusterUnavailable:
            pass
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[Callable[..., Any]]:
    made: list[Any] = []

    def make(**kwargs: Any) -> Any:
        c = open_client(redis_server.url, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        await c.aclose()


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel a loop; it must end (bounded: a loop that swallows its cancellation fails)."""
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=WAIT_S)
    if not done:
        task.print_stack()
    assert done, "the task did not end when cancelled"
    assert task.cancelled(), task.exception()


async def test_two_nodes_racing_for_a_channel_get_one_owner(clients: Any) -> None:
    a = ChannelOwnership(clients(), KEYS, FAST, "a", "ia")
    b = ChannelOwnership(clients(), KEYS, FAST, "b", "ib")
    results = await asyncio.gather(*(n.acquire("ch") for _ in range(50) for n in (a, b)))
    assert len({(o.node_id, o.epoch) for o in results}) == 1
    assert results[0].epoch == 1
    # another channel gets a higher epoch from the one counter
    assert (await b.acquire("other")).epoch == 2


async def test_a_hundred_concurrent_joins_through_three_nodes_make_one_owner(clients: Any) -> None:
    nodes = [ChannelOwnership(clients(), KEYS, FAST, f"n{i}", f"i{i}") for i in range(3)]
    results = await asyncio.gather(*(nodes[i % 3].acquire("new") for i in range(100)))
    assert len({(o.node_id, o.incarnation, o.epoch) for o in results}) == 1


async def test_owner_death_reowns_with_a_higher_epoch_and_refuses_the_stale_owner(
    clients: Any,
) -> None:
    a = ChannelOwnership(clients(), KEYS, FAST, "a", "ia")
    b = ChannelOwnership(clients(), KEYS, FAST, "b", "ib")
    lease = await a.acquire("ch")
    assert lease.is_node("a", "ia")
    assert await a.renew(lease)
    assert (await b.acquire("ch")) == lease  # b sees a's lease while a renews
    assert (await a.renew_all([lease])) == [True]
    # a stops renewing (dead or hung): its lease expires by Redis's clock, b takes over
    taken: list[Any] = []

    async def b_owns() -> bool:
        taken.append(await b.acquire("ch"))
        return taken[-1].is_node("b", "ib")

    await eventually(b_owns, "b to own the channel after a's lease expired")
    assert taken[-1].epoch > lease.epoch
    assert not await a.renew(lease)  # stale: refused
    assert not await a.release(lease)
    assert (await a.owner("ch")) == taken[-1]
    with pytest.raises(ValueError):
        await a.renew(taken[-1])  # not a's lease to renew
    assert await b.release(taken[-1])
    again = await a.acquire("ch")
    assert again.is_node("a", "ia") and again.epoch > taken[-1].epoch


@contextlib.asynccontextmanager
async def pulsing(clients: Any) -> AsyncIterator[None]:
    """Another node heartbeats meanwhile, as in any live deployment: Redis is not "away" (a
    Redis left alone longer than a lease treats its lapsed leases as an outage's)."""
    reg = NodeRegistry(clients(), KEYS, FAST)

    async def beat() -> None:
        while True:
            await reg.heartbeat("pulse", 0, "", incarnation="ip")
            await asyncio.sleep(FAST.heartbeat_s)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ClusterUnavailable):
            await task


async def test_an_owner_claiming_again_after_its_lease_ran_out_keeps_its_epoch(
    clients: Any,
) -> None:
    """A Redis outage lets every lease expire: the same process claims its channel again with
    the same epoch (the same arbiter goes on); after anyone else held it, a new one."""
    a = ChannelOwnership(clients(), KEYS, FAST, "a", "ia")
    b = ChannelOwnership(clients(), KEYS, FAST, "b", "ib")
    async with pulsing(clients):
        await _keep(a, b, clients)


async def _keep(a: ChannelOwnership, b: ChannelOwnership, clients: Any) -> None:
    lease = await a.acquire("keep")

    async def expired() -> bool:
        return await a.owner("keep") is None

    await eventually(expired, "the lease to run out")
    assert not await a.renew(lease)  # the renewal finds nothing: claimed again, same epoch
    assert await a.acquire("keep") == lease
    restarted = ChannelOwnership(clients(), KEYS, FAST, "a", "ia-2")  # a new incarnation
    await eventually(expired, "the lease to run out again")
    assert (await restarted.acquire("keep")).epoch > lease.epoch
    await eventually(expired, "and once more")
    taken = await b.acquire("keep")
    assert taken.epoch > lease.epoch and taken.is_node("b", "ib")


async def test_after_redis_was_away_a_lapsed_owner_gets_its_channel_back_first(
    clients: Any, redis_server: RedisServer
) -> None:
    """Redis stopped longer than a lease: every lease ran out through nobody's fault. For a
    lease's length after it returns, another node asking for such a channel is told its last
    owner (not given it); the last owner claims it back with its epoch. Afterwards a lapsed
    lease is free for anyone again (an owner that really died)."""
    assert redis_server.proc is not None
    a = ChannelOwnership(clients(), KEYS, FAST, "a", "ia")
    b = ChannelOwnership(clients(), KEYS, FAST, "b", "ib")
    lease = await a.acquire("back")
    redis_server.proc.send_signal(signal.SIGSTOP)
    await asyncio.sleep(FAST.lease_s * 1.5)  # the outage itself, longer than a lease
    redis_server.proc.send_signal(signal.SIGCONT)
    told = await b.acquire("back")  # b asks first: told a's, not given it
    assert told == lease and await b.owner("back") is None
    assert await a.acquire("back") == lease  # a claims it back, same epoch
    assert await b.acquire("back") == lease

    async def lapsed() -> bool:
        return await a.owner("back") is None

    async with pulsing(clients):  # Redis in use again: a stopped renewing, it is dead
        await eventually(lapsed, "a's lease to run out")
        taken = await b.acquire("back")  # free for anyone
    assert taken.is_node("b", "ib") and taken.epoch > lease.epoch


async def test_epochs_keep_growing_after_redis_restarts_empty(
    clients: Any, redis_server: RedisServer
) -> None:
    a = ChannelOwnership(clients(), KEYS, FAST, "a", "ia")
    for ch in ("x", "y", "z"):
        await a.acquire(ch)
    before = (await a.acquire("z")).epoch
    redis_server.kill()
    redis_server.start()
    b = ChannelOwnership(clients(), KEYS, FAST, "b", "ib")
    reg = NodeRegistry(clients(), KEYS, FAST)
    # a's heartbeat carries the highest epoch it saw; b, knowing nothing, still goes above it
    await eventually(
        lambda: _true(reg.heartbeat("a", 0, "", incarnation="ia", epoch_floor=a.max_epoch)),
        "a heartbeat after the restart",
    )
    assert (await b.acquire("z")).epoch > before
    assert (await a.acquire("w")).epoch > before


async def _true(aw: Awaitable[Any]) -> bool:
    await aw
    return True


async def test_a_node_that_stops_heartbeating_is_gone_after_the_ttl(clients: Any) -> None:
    reg = NodeRegistry(clients(), KEYS, FAST)
    await reg.heartbeat("a", 3, "http://127.0.0.2:8000", incarnation="ia")
    await reg.heartbeat("b", 1.5, "http://127.0.0.3:8000", incarnation="ib")
    live = {n.node_id: n for n in await reg.live_nodes()}
    assert set(live) == {"a", "b"}
    assert live["a"].load == 3 and live["a"].base_url == "http://127.0.0.2:8000"
    assert 0 <= live["b"].age_ms <= FAST.ms(FAST.node_ttl_s)
    # a second process under a live id is refused
    with pytest.raises(DuplicateNode):
        await reg.heartbeat("a", 0, "http://127.0.0.9:8000", incarnation="other")

    async def b_beats() -> None:
        while True:
            try:
                await reg.heartbeat("b", 1, "http://127.0.0.3:8000", incarnation="ib")
            except ClusterUnavailable as exc:  # redis-py may turn our cancellation into this
                if cancelled_meanwhile():
                    raise asyncio.CancelledError from exc
                raise
            if cancelled_meanwhile():  # or swallow it whole
                raise asyncio.CancelledError
            await asyncio.sleep(FAST.heartbeat_s)

    beats = asyncio.create_task(b_beats())
    try:

        async def a_gone() -> bool:
            return {n.node_id for n in await reg.live_nodes()} == {"b"}

        await eventually(a_gone, "a to leave live_nodes")
        # the id is free again for a new incarnation
        await reg.heartbeat("a", 0, "http://127.0.0.2:8000", incarnation="ia2")
        assert {n.node_id for n in await reg.live_nodes()} == {"a", "b"}
        assert await reg.leave("a", incarnation="ia2")
        assert not await reg.leave("b", incarnation="not-b")
        assert {n.node_id for n in await reg.live_nodes()} == {"b"}
    finally:
        await stop(beats)


async def test_channel_map_counts_per_node_and_drops_a_dead_nodes_entry(
    clients: Any, redis_server: RedisServer
) -> None:
    a = ChannelMap(clients(), KEYS, FAST, "a")
    b = ChannelMap(clients(), KEYS, FAST, "b")
    await a.join("ch")
    await a.join("ch")
    await b.join("ch")
    assert await a.nodes("ch") == {"a": 2, "b": 1}
    await a.leave("ch")
    assert await b.nodes("ch") == {"a": 1, "b": 1}
    await b.leave("ch")  # b's last session: only b's entry goes
    assert await b.nodes("ch") == {"a": 1}
    await b.join("ch")

    async def b_reasserts() -> None:
        while True:
            await b.reassert()
            await asyncio.sleep(FAST.reassert_s)

    task = asyncio.create_task(b_reasserts())
    try:
        # a stops re-asserting (dead): its entry expires, b's stays
        async def only_b() -> bool:
            return await b.nodes("ch") == {"b": 1}

        await eventually(only_b, "a's entry to expire")
        # Redis restarts empty: b's re-assertion puts its entry back by itself
        redis_server.kill()
        redis_server.start()
        await eventually(only_b, "b's entry to come back after the restart")
    finally:
        await stop(task)


async def test_session_placement_is_atomic_moves_are_compare_and_set(clients: Any) -> None:
    a = SessionPlacement(clients(), KEYS, FAST)
    b = SessionPlacement(clients(), KEYS, FAST)
    got = await asyncio.gather(a.place("s1", "a", "ch"), b.place("s1", "b", "ch"))
    assert got[0] == got[1] and got[0].node_id in {"a", "b"}
    holder = got[0].node_id
    other = "b" if holder == "a" else "a"
    assert await a.refresh("s1", holder) and not await a.refresh("s1", other)
    assert not await a.move("s1", other, "c", "ch")  # other does not hold it
    assert await b.move("s1", holder, "c", "ch")
    assert (await a.lookup("s1")).node_id == "c"  # type: ignore[union-attr]
    assert not await a.remove("s1", holder)
    # the holder dies: the record expires and the session can be placed elsewhere
    await eventually(lambda: _is_node(a.place("s1", "d", "ch2"), "d"), "s1's record to expire")
    assert await a.remove("s1", "d") and await a.lookup("s1") is None


async def _is_node(aw: Awaitable[Any], node: str) -> bool:
    return bool((await aw).node_id == node)


async def test_the_inbox_survives_a_redis_restart_and_the_reader_resumes(
    clients: Any, redis_server: RedisServer
) -> None:
    sender = clients()
    got: list[InboxMessage] = []

    async def handle(m: InboxMessage) -> None:
        got.append(m)

    reader = InboxReader(clients(command_timeout_s=3, retries=0), KEYS, "b", handle, block_ms=200)
    await send(sender, KEYS, "b", InboxMessage("old", "a"))  # before the reader: not its
    task = asyncio.create_task(reader.run())
    try:
        await asyncio.wait_for(reader.connected.wait(), WAIT_S)
        await send(sender, KEYS, "b", InboxMessage("one", "a", {"n": 1}))
        await eventually(lambda: _now(len(got) == 1), "the first message")
        assert got[0].kind == "one" and got[0].body == {"n": 1} and got[0].sender == "a"
        # the reader stops for a while (its process paused): it keeps its last id
        await stop(task)
        for n in (2, 3):
            await send(sender, KEYS, "b", InboxMessage("while-away", "a", {"n": n}))
        task = asyncio.create_task(reader.run())
        await eventually(lambda: _now(len(got) == 3), "the messages sent while away")
        assert [m.body["n"] for m in got] == [1, 2, 3]
        # Redis is killed and started again, empty, on the same port
        redis_server.kill()
        await eventually(lambda: _now(not reader.connected.is_set()), "the reader to notice")
        redis_server.start()
        await eventually(lambda: _true(send(sender, KEYS, "b", InboxMessage("after", "a"))),
                         "a message sent after the restart")  # fmt: skip
        await eventually(lambda: _now(len(got) == 4), "the message sent after the restart")
        assert got[-1].kind == "after" and reader.reconnects >= 1
        await send(sender, KEYS, "b", InboxMessage("later", "a"))
        await eventually(lambda: _now(len(got) == 5), "one more")
        assert [m.kind for m in got] == ["one", "while-away", "while-away", "after", "later"]
    finally:
        await stop(task)


async def _now(value: bool) -> bool:
    return value


async def test_a_subscriber_resyncs_after_redis_restarts(
    clients: Any, redis_server: RedisServer
) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    async def on_event(topic: str, event: dict[str, Any]) -> None:
        events.append((topic, event))

    async def on_resync() -> None:
        pass

    sub = EventSubscriber(
        clients(retries=0), KEYS, ["live", "alerts"], on_event, on_resync, ping_s=0.2
    )
    pub = clients()
    task = asyncio.create_task(sub.run())
    try:
        await eventually(lambda: _now(sub.resyncs == 1), "the first subscription")
        assert await publish(pub, KEYS, "alerts", {"id": 1}) == 1
        await publish(pub, KEYS, "unrelated", {"id": 0})
        await eventually(lambda: _now(len(events) == 1), "the first event")
        assert events == [("alerts", {"id": 1})]
        redis_server.kill()
        await eventually(lambda: _now(not sub.subscribed.is_set()), "the loss to be noticed")
        redis_server.start()
        await eventually(lambda: _now(sub.resyncs == 2), "the resync after the restart")
        assert sub.reconnects >= 1
        assert await publish(pub, KEYS, "live", {"id": 2}) == 1
        await eventually(lambda: _now(len(events) == 2), "an event after the restart")
        assert events[-1] == ("live", {"id": 2})
    finally:
        await stop(task)


async def test_a_hung_redis_makes_the_subscriber_reconnect(
    clients: Any, redis_server: RedisServer
) -> None:
    """SIGSTOP: the connection stays open but nothing answers; the PINGs find out."""

    async def nothing(*_: Any) -> None:
        pass

    sub = EventSubscriber(clients(retries=0), KEYS, ["live"], nothing, nothing, ping_s=0.2)
    task = asyncio.create_task(sub.run())
    assert redis_server.proc is not None
    pid = redis_server.proc.pid
    try:
        await eventually(lambda: _now(sub.resyncs == 1), "the first subscription")
        os.kill(pid, signal.SIGSTOP)
        try:
            await eventually(lambda: _now(sub.reconnects >= 1), "the hang to be noticed")
        finally:
            os.kill(pid, signal.SIGCONT)
        await eventually(lambda: _now(sub.resyncs >= 2), "the resync after the hang")
    finally:
        await stop(task)


async def test_health_says_down_while_redis_is_stopped_and_up_again_after(
    clients: Any, redis_server: RedisServer
) -> None:
    health = RedisHealth(clients(command_timeout_s=1), timeout_s=0.5)
    bound = health.timeout_s + 5  # generous: never blocked past its timeout, on a busy machine
    assert await asyncio.wait_for(health.check(), bound) == "up"
    redis_server.kill()
    assert await asyncio.wait_for(health.check(), bound) == "down"
    # many callers at once share one probe and all get an answer
    answers = await asyncio.wait_for(asyncio.gather(*(health.check() for _ in range(20))), bound)
    assert set(answers) == {"down"}
    redis_server.start()
    await eventually(lambda: _is(health.check(), "up"), "health to say up again")
    # hung (SIGSTOP): the caller still gets "down" at its timeout
    assert redis_server.proc is not None
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        assert await asyncio.wait_for(health.check(), bound) == "down"
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)
    await eventually(lambda: _is(health.check(), "up"), "health to say up after the hang")
    await health.close()


async def _is(aw: Awaitable[Any], value: Any) -> bool:
    return bool(await aw == value)


async def test_a_running_nodes_loop_writes_its_truth_and_brings_it_back_after_a_restart(
    clients: Any, redis_server: RedisServer
) -> None:
    """NodeMembership (what `serve --redis-url` runs): a join admitted through the ownership,
    its session's presence and the channel entry written by the loop, the leave removing them;
    after Redis restarts empty the loop writes the report, entry, presence and lease back; a
    cancelled loop ends."""
    from voice_server.cluster.membership import NodeMembership

    node = NodeMembership(
        clients(command_timeout_s=1.0), KEYS, FAST, node_id="a", incarnation="ia",
        base_url="http://127.0.0.2:8000",
    )  # fmt: skip
    with pytest.raises(ClusterUnavailable):
        await node.admit("ch")  # the link is not known to work before the first report
    await node.step()
    assert node.link.up
    owner = await node.admit("ch")
    assert owner.is_node("a", "ia") and node.owned == {"ch": owner}
    node.joined("s1", "ch")
    node.joined("s2", "ch")
    loop = asyncio.create_task(node.run())
    try:
        reader = ChannelMap(clients(), KEYS, FAST, "reader")
        places = SessionPlacement(clients(), KEYS, FAST)

        async def written() -> bool:
            p = await places.lookup("s1")
            return await reader.nodes("ch") == {"a": 2} and p is not None and p.node_id == "a"

        await eventually(written, "the loop to write the entry and the presence")
        node.ended("s1")

        async def s1_gone() -> bool:
            return await places.lookup("s1") is None and await reader.nodes("ch") == {"a": 1}

        await eventually(s1_gone, "the ended session's presence and count to go")
        redis_server.kill()
        redis_server.start()  # empty

        async def back() -> bool:
            live = await NodeRegistry(clients(), KEYS, FAST).live_nodes()
            p = await places.lookup("s2")
            lease = await node.ownership.owner("ch")
            return (
                [n.node_id for n in live] == ["a"]
                and p is not None
                and await reader.nodes("ch") == {"a": 1}
                and lease is not None
                and lease.is_node("a", "ia")
                and node.owned.get("ch") == lease  # the lost lease, back with a new epoch
                and lease.epoch > owner.epoch
            )

        await eventually(back, "the node's truth written back after the restart")
    finally:
        await stop(loop)


async def test_relay_indexes_are_unique_per_node_id_and_kept_across_restarts(
    clients: Callable[..., Any],
) -> None:
    from voice_server.cluster.relay_index import MAX_INDEX, IndexesExhausted, relay_index

    client = clients()
    ids = [f"n{i}" for i in range(40)]
    got = await asyncio.gather(*(relay_index(clients(), KEYS, node) for node in ids))
    assert sorted(got) == list(range(40))  # concurrent first starts: never one index twice
    assert await relay_index(client, KEYS, "n7") == got[7]  # a restart gets its own back
    for i in range(40, MAX_INDEX + 1):
        await relay_index(client, KEYS, f"n{i}")
    with pytest.raises(IndexesExhausted, match="256 relay indexes"):
        await relay_index(client, KEYS, "one-too-many")
    await client.hdel(KEYS.relay_indexes, "n3")  # an operator clears a retired node id
    assert await relay_index(client, KEYS, "one-too-many") == got[3]


async def test_a_report_carries_the_relay_and_older_reports_read_as_none(
    clients: Callable[..., Any],
) -> None:
    registry = NodeRegistry(clients(), KEYS, FAST)
    await registry.heartbeat("r1", 0.0, "http://r1", incarnation="i1", relay="3 9 10.0.0.1 4000")
    await registry.heartbeat("r2", 0.0, "http://r2", incarnation="i2")
    by_id = {n.node_id: n.relay for n in await registry.live_nodes()}
    assert by_id == {"r1": "3 9 10.0.0.1 4000", "r2": ""}
