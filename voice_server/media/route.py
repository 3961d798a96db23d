"""Routes: who hears whom, decided in one place (pure).

A :class:`Route` is what one media source talks into and hears: the channels it sends into (one
or several, in its order of preference), the channels it hears, an optional listener filter (only
these session ids hear it: direct talk) and a priority. A phone's route is its one channel both
ways (:meth:`Route.channel`); a supervisor hears several and talks into one; an announcement (a
server-side source) sends into several and hears none.

The rule (:func:`heard_via`): a listener hears a talker when they are not the same source, the
talker's filter (if any) names the listener, and the listener hears a channel the talker sends
into. It hears it **once**, through the first of the talker's send channels that it hears: on that
channel's slots. Each channel's router forwards a talker's packets to its :func:`audience` there,
built when members or routes change (never per packet), and grouped by :func:`audience_key` so
that talkers with the same audience share one target list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "MAX_CHANNELS",
    "AudienceKey",
    "Route",
    "audience",
    "audience_key",
    "heard_via",
    "resolve",
]

MAX_CHANNELS = 16  # channels one route may name on each side


@dataclass(frozen=True, slots=True)
class Route:
    sends: tuple[str, ...]  # channels talked into, first preferred
    hears: tuple[str, ...]  # channels heard (each needs its slot m-lines in the peer connection)
    only: frozenset[str] | None = None  # listener filter: only these session ids hear it
    priority: int = 0  # higher wins a contended slot (used by the channel arbiter)
    #: every packet counts as voiced whatever its audio level: an open emergency's window,
    #: during which the raiser holds a slot however quiet their microphone is
    hold: bool = False

    def __post_init__(self) -> None:
        if len(set(self.sends)) != len(self.sends) or len(set(self.hears)) != len(self.hears):
            raise ValueError("a route names a channel twice")
        if len(self.sends) > MAX_CHANNELS or len(self.hears) > MAX_CHANNELS:
            raise ValueError(f"a route names at most {MAX_CHANNELS} channels each way")

    @classmethod
    def channel(cls, name: str) -> Route:
        """Today's phone: one channel, both ways."""
        return cls((name,), (name,))

    @property
    def channels(self) -> frozenset[str]:
        """Every channel the route touches (a router is needed for each)."""
        return frozenset(self.sends) | frozenset(self.hears)


def heard_via(talker_id: str, talker: Route, listener_id: str, listener: Route) -> str | None:
    """The channel through which ``listener_id`` hears ``talker_id``, None when it does not."""
    if talker_id == listener_id:
        return None
    if talker.only is not None and listener_id not in talker.only:
        return None
    for channel in talker.sends:
        if channel in listener.hears:
            return channel
    return None


def resolve(routes: Mapping[str, Route]) -> dict[str, dict[str, str]]:
    """talker → {listener → channel} for every pair (a whole-picture view, O(n²): for checks
    and tools, not for the plane, which builds per-channel audiences)."""
    out: dict[str, dict[str, str]] = {}
    for t, troute in routes.items():
        heard = {}
        for lid, lroute in routes.items():
            via = heard_via(t, troute, lid, lroute)
            if via is not None:
                heard[lid] = via
        out[t] = heard
    return out


#: what decides a talker's audience in one channel, besides that channel's listeners: its
#: filter, and the send channels it prefers to this one (their listeners hear it there)
AudienceKey = tuple[frozenset[str] | None, tuple[str, ...]]
PLAIN: AudienceKey = (None, ())


def audience_key(channel: str, talker: Route) -> AudienceKey:
    """The key of a talker's audience in ``channel`` (``PLAIN`` for a one-channel talker with no
    filter: everyone who hears the channel)."""
    if talker.only is None and talker.sends[:1] == (channel,):
        return PLAIN
    earlier = talker.sends[: talker.sends.index(channel)] if channel in talker.sends else ()
    return (talker.only, earlier)


def audience(key: AudienceKey, listeners: Iterable[tuple[str, Route]]) -> list[str]:
    """The listeners of one channel (id, route; all of them hear it) who hear a talker whose
    audience key is ``key`` there. The talker itself is not removed here: the fan-out skips it."""
    only, earlier = key
    out = []
    for lid, lroute in listeners:
        if only is not None and lid not in only:
            continue
        if earlier and any(c in lroute.hears for c in earlier):
            continue
        out.append(lid)
    return out
