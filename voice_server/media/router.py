"""A channel's router: who talks on which slot, and the forwarding hot path.

mediasoup's vocabulary: a *router* is one channel. A source whose route sends into the channel is
a *member* here (it produces: its microphone, mid 0, or a server-side source); a participant whose
route hears the channel is a *consumer* here (the channel's slot streams, one block of slot
m-lines in its peer connection). A phone is both. The routing core is a map from a talking member
to its audience (:mod:`voice_server.media.route`: the one place "who hears whom" is decided),
via the slot it holds.

Per forwarded packet (invariant 6 of the README): one SRTP unprotect (done by the endpoint), one
header rewrite (the same bytes for every listener: the server's offer fixed payload type, header
extension ids and slot SSRCs for everyone), then one protect and one ``sendto`` per listener. No
decoding, no jitter buffer, no coroutine, no log call.
The copies are sent by a :class:`~voice_server.media.fanout.Fanout` that
:meth:`Router.refresh_listeners` rebuilds on every membership, route, transport state or media
address change (one per distinct audience, shared by the talkers that have it), so the per-copy
loop reads no attribute (and batches its sends where it can).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from voice_server.histogram import LatencyHistogram
from voice_server.media.counters import MediaCounters
from voice_server.media.errors import PacketError
from voice_server.media.fanout import Fanout, SendTo
from voice_server.media.red import RED_PT, RedError, log_packets, parse_payload, primary_packet
from voice_server.media.route import PLAIN, AudienceKey, Route, audience, audience_key
from voice_server.media.rtp import audio_level, read_header
from voice_server.media.slot_stream import PreRoll, SlotStream
from voice_server.media.srtp_fast import SrtpCodec, fast_session
from voice_server.media.transport import Address
from voice_server.talk.detector import TalkDetector, TalkEvent, TalkRules
from voice_server.talk.slots import SlotTable

_STARTED = TalkEvent.STARTED
_STOPPED = TalkEvent.STOPPED
_perf_ns = time.perf_counter_ns
PREROLL_LEAD_MS = 40
_LOUDEST = (True, 0)  # an RFC 6464 (voice activity, level) of 0 dBov
NEVER_PREEMPTED = 3  # level 3 (an open emergency) is never pre-empted
NO_VICTIM = 1 << 30
MAX_MIRROR_AUDIENCES = 64  # routed talkers' audiences of mirrored packets kept per channel


class TalkEvents(Protocol):
    """Who hears about talk bursts (the signaling hub). ``channel`` is the router's: a source
    that sends into several channels holds a slot in each."""

    def talk_started(self, session_id: str, channel: str, slot: int) -> None: ...

    def talk_stopped(self, session_id: str, channel: str, slot: int) -> None: ...

    def slot_busy(self, session_id: str, channel: str, slots: int) -> None: ...

    def preempted(self, session_id: str, channel: str, slot: int, by: str) -> None:
        """``session_id`` lost ``slot`` to the higher-level talker ``by`` (its burst is
        confirmed); sent after ``talk_stopped`` of the victim, before ``talk_started`` of
        ``by``."""
        ...


H = TypeVar("H")
#: where a channel's forwarded packets also go with several media workers (the relay's
#: ``mirror_out``): (channel, talker session id, slot, the packet as forwarded, arrival ns, the
#: talker's route when its audience is not everyone hearing the channel, else None)
MirrorOut = Callable[[str, str, int, bytes, int, Route | None], None]


class Tap(Protocol[H]):
    """Where each talk burst's packets go besides the listeners (the call log's tap). The
    handle ``open`` returns is opaque here: the router only hands it back.

    Called on the hot path: must never block (a bounded ``deque.append``)."""

    def open(
        self, session_id: str, channel: str, preroll: list[tuple[bytes, int]], now_ms: int
    ) -> H: ...

    def packet(self, handle: H, plain: bytes) -> None: ...

    def close(self, handle: H) -> None: ...


class Peer(Protocol):
    """What a router needs of a source or listener: a transport, or a server-side source (which
    is never media-ready as a listener)."""

    @property
    def session_id(self) -> str: ...

    @property
    def level_ext_id(self) -> int: ...

    @property
    def media_ready(self) -> bool: ...

    @property
    def remote(self) -> Address | None: ...

    @property
    def tx(self) -> Any: ...


class Member:
    """A source talking into this router's channel (a producer)."""

    __slots__ = (
        "burst",
        "detector",
        "fanout",
        "fanout_plain",
        "log_seq",
        "logged",
        "mirrored",
        "onset_ns",
        "paused",
        "preempting",
        "preroll",
        "route",
        "router",
        "session_id",
        "slot",
        "started",
        "tentative",
        "transport",
        "waiting",
    )

    def __init__(
        self, router: Router, transport: Peer, route: Route, rules: TalkRules, preroll: int
    ) -> None:
        self.router = router
        self.session_id = transport.session_id
        self.transport = transport  # also its identity in the fan-out (the talker is skipped)
        self.route = route
        self.detector = TalkDetector(rules)
        self.preroll = PreRoll(preroll)
        self.slot: int | None = None  # the slot held, 1..N like the SDP mids
        self.tentative = False  # holding a slot during the attack, before talk_started
        self.onset_ns = 0  # when the current burst's first packet was forwarded
        self.waiting = False  # talking while every slot was busy
        self.started = 0  # the router's count when it got its slot (most recent: highest)
        self.preempting: Member | None = None  # the holder it paused, until its burst confirms
        self.paused: int | None = None  # the slot it announced and lost to a tentative cut-in
        self.burst: object | None = None  # the talk burst being tapped for the log (opaque)
        self.fanout: Fanout = router.silent  # this talker's audience here (RED as sent)
        self.fanout_plain: Fanout = router.silent  # those of it without RED (primary only)
        #: its audience is everyone hearing the channel (no listener filter, no channel it
        #: prefers): its mirrored packets carry no audience
        self.mirrored = route.only is None and route.sends[:1] == (router.channel,)
        self.log_seq: int | None = None  # the last sequence number the call log got
        # its bursts go to the call-log tap (a server-side source may log its own)
        self.logged: bool = getattr(transport, "logged", True)


class Consumer:
    """A participant hearing this router's channel: one block of its slot m-lines."""

    __slots__ = ("route", "session_id", "srtp", "transport")

    def __init__(self, transport: Peer, route: Route) -> None:
        self.session_id = transport.session_id
        self.transport = transport
        self.route = route
        self.srtp: SrtpCodec | None = None  # transport.tx for the fan-out loop


class Router:
    def __init__(
        self,
        channel: str,
        *,
        slot_ssrcs: tuple[int, ...],
        payload_type: int,
        rules: TalkRules,
        preroll_packets: int,
        events: TalkEvents,
        sendto: SendTo,
        counters: MediaCounters,
        histogram: LatencyHistogram,
        onset_histogram: LatencyHistogram | None = None,
        tap: Tap[Any] | None = None,
        fileno: Callable[[], int | None] | None = None,
    ) -> None:
        self.channel = channel
        self.slot_ssrcs = slot_ssrcs
        self.members: dict[str, Member] = {}  # sources talking into the channel
        self.consumers: dict[str, Consumer] = {}  # participants hearing it
        self.table: SlotTable[str] = SlotTable(len(slot_ssrcs))
        self.streams = [SlotStream(ssrc, payload_type) for ssrc in slot_ssrcs]
        self.stream_octets = [0] * len(slot_ssrcs)
        self.stream_last_ns = [0] * len(slot_ssrcs)
        self._rules = rules
        self._preroll = preroll_packets
        self._events = events
        self._sendto = sendto
        self._counters = counters
        self._hist = histogram
        self._onsets = onset_histogram
        self._tap = tap
        self._fileno = fileno  # the media socket, for batched sends
        self._listeners: list[Consumer] = []
        #: with several media workers: the channel's owner sends what it forwards to the other
        #: workers with listeners (None: one process, or nobody to mirror to)
        self.mirror_out: MirrorOut | None = None
        #: every listener, by RED or not: the audience of a packet mirrored from the owner
        self._all_targets: tuple[list[Any], list[Any]] = ([], [])
        self._all: tuple[Fanout, Fanout] | None = None
        #: the listeners (id, route, target, RED) a routed talker's mirrored packets choose from
        self._heard: list[tuple[str, Route, Any, bool]] = []
        self._mirror_fanouts: dict[AudienceKey, tuple[Fanout, Fanout]] = {}
        #: an audience of nobody (a member's until the first refresh)
        self.silent = Fanout([], sendto=sendto, counters=counters, histogram=histogram)
        self._fanouts: dict[AudienceKey, tuple[Fanout, Fanout]] = {}
        self._waiting: list[Member] = []
        #: the lowest level of a holder that may be pre-empted (NO_VICTIM: none may): a talker
        #: above it gets a slot although every slot is busy (updated on slot events only)
        self._low = NO_VICTIM
        self._starts = 0
        self.closed = False

    # ------------------------------------------------------------------ membership
    def add(self, transport: Peer, route: Route | None = None) -> Member | None:
        """Place a source or participant by its route (default: this channel both ways);
        returns its member when it talks into the channel. Call :meth:`refresh_listeners`
        after."""
        route = route or Route.channel(self.channel)
        return self.place(transport, route, hear=self.channel in route.hears)

    def place(
        self, transport: Peer, route: Route, *, hear: bool, send: bool | None = None
    ) -> Member | None:
        """Add, update or remove ``transport``'s member and consumer here after a route change
        (``hear``: it hears this channel, and its peer connection has this channel's slot
        m-lines; ``send``: it talks into it here, by default when its route sends into it: a
        relayed talker is a member only where its packets arrive). Call
        :meth:`refresh_listeners` after."""
        sid = transport.session_id
        member = self.members.get(sid)
        if self.channel in route.sends if send is None else send:
            if member is None or member.transport is not transport:
                if member is not None:
                    self._drop_member(member)
                member = Member(self, transport, route, self._rules, self._preroll)
                self.members[sid] = member
            member.route = route
        elif member is not None:
            self._drop_member(member)
            member = None
        consumer = self.consumers.get(sid)
        if hear:
            if consumer is None or consumer.transport is not transport:
                consumer = self.consumers[sid] = Consumer(transport, route)
            consumer.route = route
        elif consumer is not None:
            del self.consumers[sid]
        return member

    def remove(self, session_id: str) -> None:
        member = self.members.pop(session_id, None)
        consumer = self.consumers.pop(session_id, None)
        if member is not None:
            self._drop_member(member)
        if member is not None or consumer is not None:
            self.refresh_listeners()

    def _drop_member(self, member: Member) -> None:
        if self.members.get(member.session_id) is member:
            del self.members[member.session_id]
        if member.waiting:
            member.waiting = False
            self._waiting.remove(member)
        if member.slot is not None:
            self._stop(member, notify=not member.tentative)
        if member.paused is not None:
            self._unpause(member, restore=False)
        self._end_burst(member)
        member.fanout = member.fanout_plain = self.silent

    @property
    def empty(self) -> bool:
        return not self.members and not self.consumers

    def close(self) -> None:
        """Close the channel and everything in it: every burst ends (the log gets it), every
        slot is given back, no audience is left."""
        for member in list(self.members.values()):
            self._drop_member(member)
        self.consumers.clear()
        self._listeners = []
        self._fanouts = {}
        self.closed = True

    def refresh_listeners(self) -> None:
        """Recompute who receives forwarded audio and where (call when a member or consumer
        comes or goes, a route changes, or a transport's state or media address changes)."""
        listeners = []
        targets: dict[str, tuple[object, SrtpCodec, Address]] = {}
        red: set[str] = set()  # listeners whose answer kept audio RED
        for c in self.consumers.values():
            tr = c.transport
            if not tr.media_ready or tr.remote is None or tr.tx is None:
                continue
            if c.srtp is None or c.srtp.session is not tr.tx:
                c.srtp = fast_session(tr.tx)
            listeners.append(c)
            targets[c.session_id] = (tr, c.srtp, tr.remote)
            if getattr(tr, "red", False):
                red.add(c.session_id)
        self._listeners = listeners
        if self.mirror_out is not None:  # several media workers: mirrored packets' audience
            self._all_targets = (
                [targets[c.session_id] for c in listeners if c.session_id in red],
                [targets[c.session_id] for c in listeners if c.session_id not in red],
            )
            self._all = None  # built at the first mirrored packet
            self._heard = [
                (c.session_id, c.route, targets[c.session_id], c.session_id in red)
                for c in listeners
            ]
            self._mirror_fanouts = {}
        heard = [(c.session_id, c.route) for c in listeners]
        fanouts: dict[AudienceKey, tuple[Fanout, Fanout]] = {}
        fd = self._fileno() if self._fileno is not None else None
        for m in self.members.values():
            key = audience_key(self.channel, m.route)
            pair = fanouts.get(key)
            if pair is None:
                who = [c.session_id for c in listeners] if key == PLAIN else audience(key, heard)
                pair = fanouts[key] = (
                    self._fanout([targets[sid] for sid in who if sid in red], fd),
                    self._fanout([targets[sid] for sid in who if sid not in red], fd),
                )
            m.fanout, m.fanout_plain = pair
            m.mirrored = key == PLAIN
        self._fanouts = fanouts
        self._holders_changed()  # a route change may change a holder's level

    def _fanout(self, targets: list[tuple[object, SrtpCodec, Address]], fd: int | None) -> Fanout:
        if not targets:
            return self.silent
        return Fanout(
            targets, sendto=self._sendto, counters=self._counters, histogram=self._hist, fd=fd
        )

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    def audience_of(self, session_id: str) -> list[str]:
        """Who hears this member here now (for checks and tests; not the hot path)."""
        member = self.members.get(session_id)
        if member is None:
            return []
        heard = [(c.session_id, c.route) for c in self._listeners]
        key = audience_key(self.channel, member.route)
        return [sid for sid in audience(key, heard) if sid != session_id]

    # ------------------------------------------------------------------ hot path
    def on_rtp(self, member: Member, plain: bytes, t0_ns: int) -> None:
        """One decrypted RTP packet from ``member``'s microphone."""
        try:
            level = audio_level(plain, member.transport.level_ext_id)
            if plain[1] & 0x7F == RED_PT:
                self._check_red(plain)
        except RedError:
            self._counters.drop_bad_red += 1
            return
        except PacketError:
            self._counters.drop_bad_rtp += 1
            return
        now_ms = t0_ns // 1_000_000
        detector = member.detector
        if member.route.hold:  # an open emergency: heard whatever the level
            level = _LOUDEST
        event = detector.feed(now_ms, None if level is None else level[1])
        burst = member.burst
        if burst is not None:  # the whole burst goes to the log, slot or not
            if event == _STOPPED:
                self._end_burst(member)
            else:
                self._log(member, burst, plain)
        if member.slot is not None:
            if member.tentative:
                member.preroll.push(plain, now_ms)  # what the burst began with, until confirmed
                if event == _STARTED:
                    self._confirm(member, now_ms)
                elif not detector.attacking:  # the voiced run broke: a click, not speech
                    self._stop(member, notify=False)
                    member.preroll.drain()  # forwarded already: never again
                    return
            elif event == _STOPPED:
                self._stop(member, notify=True)
                member.preroll.push(plain, now_ms)
                return
            self._forward(member, bytearray(plain), now_ms, t0_ns)
            return
        member.preroll.push(plain, now_ms)
        if event == _STARTED:
            self._open_burst(member, now_ms)
            self._start(member, t0_ns)
        elif event == _STOPPED and member.waiting:
            member.waiting = False
            self._waiting.remove(member)
        elif member.waiting:
            self._counters.drop_slot_busy += 1
        elif detector.attacking:
            if not self.table.busy:
                self._speculate(member, t0_ns)
            elif member.route.priority > self._low:
                self._cut_in(member, t0_ns)

    def _check_red(self, plain: bytes) -> None:
        """Raise RedError (a PacketError) when the RED packet ``plain`` is malformed."""
        hlen = read_header(plain)[5]
        end = len(plain) - (plain[-1] if plain[0] & 0x20 else 0)
        if end < hlen:
            raise RedError("RTP padding longer than the payload")
        parse_payload(plain, hlen, end)
        self._counters.red_packets_in += 1

    def _log(self, member: Member, burst: object, plain: bytes) -> None:
        """The call log gets plain Opus: a RED packet's primary frame, after the frames its
        redundancy recovers of packets lost since the log's last one."""
        tap = self._tap
        assert tap is not None
        if plain[1] & 0x7F == RED_PT:
            packets = log_packets(plain, member.log_seq)
            self._counters.red_recovered += len(packets) - 1
            for packet in packets:
                tap.packet(burst, packet)
        else:
            tap.packet(burst, plain)
        member.log_seq = (plain[2] << 8) | plain[3]

    def _forward(self, src: Member, buf: bytearray, now_ms: int, t0_ns: int) -> None:
        slot = src.slot
        assert slot is not None
        index = slot - 1
        red = buf[1] & 0x7F == RED_PT
        stream = self.streams[index]
        if not stream.rewrite(buf, src.session_id, now_ms):  # payload type: Opus
            self._counters.drop_stale += 1
            return
        if red:  # two variants, built once per packet: RED as sent, and its primary frame
            primary = primary_packet(buf)
            buf[1] = (buf[1] & 0x80) | RED_PT
            data = bytes(buf)
        else:
            data = primary = bytes(buf)
        self._counters.packets_routed += 1
        self.stream_octets[index] += len(data) - 12
        if stream.late:  # into its hole: the sender reports go on from the newest packet
            self._counters.late_forwarded += 1
        else:
            self.stream_last_ns[index] = t0_ns
        if src.fanout.size:
            src.fanout.send(data, src.transport, t0_ns)
            if red:
                self._counters.red_routed += 1
        if src.fanout_plain.size:
            src.fanout_plain.send(primary, src.transport, t0_ns)
        mirror = self.mirror_out
        if mirror is not None:
            mirror(self.channel, src.session_id, slot, data, t0_ns,
                   None if src.mirrored else src.route)  # fmt: skip

    def mirror(
        self, talker: str, slot: int, data: bytes, t0_ns: int, key: AudienceKey = PLAIN
    ) -> bool:
        """A packet the channel's owner (another media worker) forwarded on ``slot``, already
        rewritten for it (the slot SSRCs are the same on every worker): to every listener here
        but the talker (``key``: a routed talker's audience key, the listeners here it
        reaches), RED or its primary frame as each answered. False: not this channel's slot
        stream (dropped)."""
        if not 1 <= slot <= len(self.streams) or len(data) < 12:
            return False
        index = slot - 1
        stream = self.streams[index]
        if int.from_bytes(data[8:12], "big") != stream.ssrc:
            return False
        # the owner's slot stream, as this worker's sender reports tell it (a late packet the
        # owner forwarded into its hole leaves them at the newest)
        seq = (data[2] << 8) | data[3]
        if not stream.forwarded or 0 < (seq - stream.seq) & 0xFFFF < 0x8000:
            stream.seq = seq
            stream.timestamp = int.from_bytes(data[4:8], "big")
            self.stream_last_ns[index] = t0_ns
        stream.forwarded += 1
        self.stream_octets[index] += len(data) - 12
        pair = self._all if key == PLAIN else self._mirror_fanouts.get(key)
        if pair is None:
            pair = self._mirror_pair(key)
        consumer = self.consumers.get(talker)
        src = consumer.transport if consumer is not None else None
        self._counters.packets_routed += 1
        if data[1] & 0x7F == RED_PT:
            if pair[0].size:
                pair[0].send(data, src, t0_ns)
            if pair[1].size:
                pair[1].send(primary_packet(data), src, t0_ns)
        else:
            if pair[0].size:
                pair[0].send(data, src, t0_ns)
            if pair[1].size:
                pair[1].send(data, src, t0_ns)
        return True

    def _mirror_pair(self, key: AudienceKey) -> tuple[Fanout, Fanout]:
        """The fan-outs of mirrored packets whose talker has audience key ``key`` here."""
        fd = self._fileno() if self._fileno is not None else None
        if key == PLAIN:
            red_targets, plain_targets = self._all_targets
            pair = self._all = (self._fanout(red_targets, fd), self._fanout(plain_targets, fd))
            return pair
        who = set(audience(key, [(sid, route) for sid, route, _, _ in self._heard]))
        chosen = [(target, red) for sid, _, target, red in self._heard if sid in who]
        pair = (
            self._fanout([t for t, red in chosen if red], fd),
            self._fanout([t for t, red in chosen if not red], fd),
        )
        if len(self._mirror_fanouts) >= MAX_MIRROR_AUDIENCES:
            self._mirror_fanouts.clear()
        self._mirror_fanouts[key] = pair
        return pair

    # ------------------------------------------------------------------ talk bursts
    # A burst is *confirmed* (talk_started) after the detector's attack, but its audio is
    # forwarded from its first voiced packet: a free slot is held *tentatively* during the
    # attack, so listeners get the onset at once (no 40 ms wait, and no pre-roll arriving in
    # one go, which made every receiver's jitter buffer grow). A run that breaks before the
    # attack is over (a click) gives the slot back silently: listeners heard a few tens of
    # milliseconds of it, nobody saw a talk event.
    def _speculate(self, member: Member, t0_ns: int) -> None:
        slot = self.table.acquire(member.session_id)
        if slot is None:
            return
        member.slot = slot
        member.tentative = True
        self._took(member)
        kept = self._first_packets(member, t0_ns)
        for packet, arrival_ms in kept:  # keep them: the burst's start, until it is confirmed
            member.preroll.push(packet, arrival_ms)

    def _confirm(self, member: Member, now_ms: int) -> None:
        """The attack is over: the tentative burst is a talk burst. ``member.preroll`` holds
        its last packets (already forwarded) until here, for whoever wants the burst's start."""
        member.tentative = False
        self._counters.talk_bursts += 1
        assert member.slot is not None
        victim = member.preempting
        if victim is not None:
            member.preempting = None
            self._preempted(victim, member)
        self._events.talk_started(member.session_id, self.channel, member.slot)
        self._open_burst(member, now_ms)
        member.preroll.drain()

    def _start(self, member: Member, t0_ns: int) -> None:
        slot = self.table.acquire(member.session_id)
        if slot is None and member.route.priority > self._low:
            victim = self._victim(member.route.priority)
            if victim is not None:  # a cut-in confirmed at once (no tentative phase)
                paused = self._pause(victim)
                slot = self.table.acquire(member.session_id)
                if paused is not None:
                    self._preempted(paused, member)
        if slot is None:
            member.waiting = True
            self._waiting.append(member)
            self._counters.slot_busy_bursts += 1
            self._events.slot_busy(member.session_id, self.channel, len(self.streams))
            return
        self._open(member, slot, t0_ns)

    def _open(self, member: Member, slot: int, t0_ns: int) -> None:
        member.slot = slot
        self._took(member)
        self._counters.talk_bursts += 1
        self._events.talk_started(member.session_id, self.channel, slot)
        self._first_packets(member, t0_ns)

    def _first_packets(self, member: Member, t0_ns: int) -> list[tuple[bytes, int]]:
        """Forward the pre-roll: the voiced run so far and at most PREROLL_LEAD_MS before it
        (a soft first consonant). Older packets (DTX, a quiet stretch long ago) would make every
        listener play old silence first: latency, and a jitter-buffer upset."""
        detector = member.detector
        # the burst's first voiced packet: of the run in progress, or of the confirmed burst
        start_ms = detector.run_start_ms if detector.attacking else detector.started_at_ms
        oldest = start_ms - PREROLL_LEAD_MS
        packets = member.preroll.drain()
        for packet, arrival_ms in packets:
            if arrival_ms >= oldest:
                self._forward(member, bytearray(packet), arrival_ms, t0_ns)
        if self._onsets is not None and self.listeners > 1:
            # talk onset (arrival of the burst's first voiced packet) -> its first copy sent
            self._onsets.observe_us(_perf_ns() // 1000 - start_ms * 1000)
        return packets

    def _stop(self, member: Member, *, notify: bool) -> None:
        slot = member.slot
        if slot is None:
            return
        member.slot = None
        member.tentative = False
        self.table.release(member.session_id)
        self.streams[slot - 1].release()
        if notify:
            self._events.talk_stopped(member.session_id, self.channel, slot)
        victim = member.preempting
        if victim is not None:  # a cut-in that was a click: the paused holder gets it back
            member.preempting = None
            self._unpause(victim, restore=True)
        self._holders_changed()
        # a talker who found every slot busy and is still talking takes the freed slot (the
        # highest priority first, then the longest waiting)
        while self._waiting:
            top = max(w.route.priority for w in self._waiting)
            waiter = next(w for w in self._waiting if w.route.priority == top)
            self._waiting.remove(waiter)
            waiter.waiting = False
            if waiter.detector.talking:
                granted = self.table.acquire(waiter.session_id)
                if granted is not None:
                    self._open(waiter, granted, _perf_ns())
                break

    # ------------------------------------------------------------------ pre-emption
    # A talker of a higher level (media.route.Route.priority; talk.priority's table) always gets
    # a slot. When every slot is busy, the lowest-level, most recently started holder below it
    # (never a level-3 one) is paused at the cut-in's first voiced packet: its copies stop at
    # once, the slot is the cut-in's, tentatively like a free slot. When the cut-in's attack
    # confirms it, the holder gets talk_stopped and ``preempted`` and waits for a slot like a
    # talker who found none; a click gives the holder its slot back silently. The holder's
    # audio reaches the call log throughout (the tap does not depend on the slot).
    def _took(self, member: Member) -> None:
        self._starts += 1
        member.started = self._starts
        self._holders_changed()

    def _holders_changed(self) -> None:
        low = NO_VICTIM
        members = self.members
        for _, sid in self.table.held():
            level = members[sid].route.priority
            if level < low and level < NEVER_PREEMPTED:
                low = level
        self._low = low

    def _victim(self, level: int) -> Member | None:
        """The holder a talker of ``level`` pre-empts: the lowest level below it (never level
        3), the most recently started of those; None when there is none."""
        best: Member | None = None
        for _, sid in self.table.held():
            m = self.members[sid]
            p = m.route.priority
            if p >= level or p >= NEVER_PREEMPTED:
                continue
            if best is None or (p, -m.started) < (best.route.priority, -best.started):
                best = m
        return best

    def _cut_in(self, member: Member, t0_ns: int) -> None:
        victim = self._victim(member.route.priority)
        if victim is None:
            return
        member.preempting = self._pause(victim)  # decided when the cut-in confirms
        self._speculate(member, t0_ns)
        self._counters.preemptions += 1

    def _pause(self, victim: Member) -> Member | None:
        """Stop forwarding ``victim`` now and free its slot, telling nobody yet. Returns the
        announced holder whose fate the cut-in now decides: ``victim``, or when ``victim`` was
        itself a tentative cut-in, the holder it had paused (the tentative one never had a talk
        event: it simply has no slot, and gets slot_busy if it talks on)."""
        slot = victim.slot
        assert slot is not None
        victim.slot = None
        self.table.release(victim.session_id)
        self.streams[slot - 1].release()
        paused: Member | None
        if victim.tentative:
            victim.tentative = False
            victim.preroll.drain()
            paused, victim.preempting = victim.preempting, None
        else:
            victim.paused = slot
            paused = victim
        self._holders_changed()
        return paused

    def _unpause(self, victim: Member, *, restore: bool) -> None:
        """The cut-in that paused ``victim`` was a click (``restore``: it gets its slot back
        silently if it still talks) or ``victim`` leaves."""
        slot = victim.paused
        assert slot is not None
        victim.paused = None
        if (
            restore
            and victim.slot is None
            and victim.detector.talking
            and victim.session_id in self.members
        ):
            granted = self.table.acquire(victim.session_id)
            if granted is not None:
                victim.slot = granted
                self._took(victim)
                if granted == slot:
                    return
                self._events.talk_stopped(victim.session_id, self.channel, slot)
                self._events.talk_started(victim.session_id, self.channel, granted)
                return
        self._events.talk_stopped(victim.session_id, self.channel, slot)

    def _preempted(self, victim: Member, by: Member) -> None:
        """The cut-in is confirmed: the paused holder is told, and waits for a slot."""
        slot = victim.paused
        if slot is None:
            return
        victim.paused = None
        self._events.talk_stopped(victim.session_id, self.channel, slot)
        self._events.preempted(victim.session_id, self.channel, slot, by.session_id)
        if victim.detector.talking and not victim.waiting:
            victim.waiting = True
            self._waiting.append(victim)

    def _open_burst(self, member: Member, now_ms: int) -> None:
        """A confirmed talk burst starts: the log gets it from its first kept packets on,
        whether or not a slot was free (a slot_busy talker is still transcribed). A talker into
        several channels is tapped once, in the first (its rows for the others come from it)."""
        if self._tap is not None and member.logged and member.route.sends[0] == self.channel:
            preroll: list[tuple[bytes, int]] = []
            member.log_seq = None
            for packet, arrival_ms in member.preroll.peek():  # plain Opus only, like _log
                if packet[1] & 0x7F == RED_PT:
                    preroll += [(p, arrival_ms) for p in log_packets(packet, member.log_seq)]
                else:
                    preroll.append((packet, arrival_ms))
                member.log_seq = (packet[2] << 8) | packet[3]
            member.burst = self._tap.open(member.session_id, self.channel, preroll, now_ms)

    def _end_burst(self, member: Member) -> None:
        burst = member.burst
        if burst is not None:
            member.burst = None
            self._tap.close(burst)  # type: ignore[union-attr]

    def tick(self, now_ns: int) -> None:
        """Periodic: end bursts whose talker went silent (DTX or push-to-talk release)."""
        now_ms = now_ns // 1_000_000
        for member in list(self.members.values()):
            if member.slot is None and not member.waiting and member.burst is None:
                continue
            if member.tentative:
                # packets stopped during the attack (DTX after a click): give the slot back
                if now_ms - member.detector.last_voiced_ms > member.detector.rules.attack_gap_ms:
                    member.detector.reset()
                    self._stop(member, notify=False)
                    member.preroll.drain()
                continue
            if member.detector.tick(now_ms) == _STOPPED:
                self._end_burst(member)
                if member.slot is not None:
                    self._stop(member, notify=True)
                elif member.waiting:
                    member.waiting = False
                    self._waiting.remove(member)

    def hold_talk(self, session_id: str, now_ns: int, hold_ms: int) -> bool:
        """Keep ``session_id``'s burst (and its slot) going for ``hold_ms`` without voice: its
        network changed (an ICE restart), and its voice comes back on the new path within a
        few hundred ms. Listeners meanwhile keep expecting audio (no talk_stopped, keepalives
        go on), so one whose own path died at the same moment notices as soon as it would
        mid-burst. False when it holds no slot here."""
        member = self.members.get(session_id)
        if member is None or member.slot is None or member.tentative:
            return False
        return member.detector.hold(now_ns // 1_000_000, hold_ms)

    @property
    def active_talkers(self) -> int:
        return sum(1 for m in self.members.values() if m.slot is not None)
