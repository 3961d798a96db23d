"""The priority table and talk rights: the one place a talker's level is decided (pure).

=====  ==================================================================  ===================
level  who / what                                                          beats
=====  ==================================================================  ===================
1      staff; routine announcements                                        nobody (slot_busy)
2      supervisors and admins; all-calls; urgent announcements;            level 1 holders
       a member a channel raises (``channels set NAME --priority U=2``)
3      an open emergency (reserved: never given by role or by a channel)   levels 1 and 2
=====  ==================================================================  ===================

A higher level always gets a slot (a lower-level holder is pre-empted); an equal or lower level
never pre-empts; a level-3 holder is never pre-empted; while a level >= 2 talker holds a slot
every listener of the channel is told to duck the other slots (``duck``, ``DEFAULT_DUCK_DB``
unless the channel says otherwise). Levels come from the server's principal (role) and the
channel's settings only: a level in a client message is ignored.

Channel settings (the channel's JSON ``settings``): ``priority`` {user: 1|2} overrides,
``listeners`` [user] members who may hear but never talk, ``duck_db`` (-40..0).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "DEFAULT_DUCK_DB",
    "Kind",
    "Level",
    "duck_db",
    "is_listener",
    "level_for",
    "listeners",
    "overrides",
    "validate_duck_db",
    "validate_override",
]


class Level(IntEnum):
    ROUTINE = 1  # staff, routine announcements
    URGENT = 2  # supervisors, admins, all-calls, urgent announcements
    EMERGENCY = 3  # an open emergency


class Kind(StrEnum):
    """What a talk burst is (``talk_started.kind``)."""

    SPEECH = "speech"
    ALL_CALL = "all_call"
    DIRECT = "direct"
    ANNOUNCEMENT = "announcement"
    EMERGENCY = "emergency"


ROLE_LEVEL: Mapping[str, Level] = {
    "staff": Level.ROUTINE,
    "supervisor": Level.URGENT,
    "admin": Level.URGENT,
}
#: the least level of a burst of each kind (speech and direct talk: the talker's own level)
KIND_LEVEL: Mapping[Kind, Level] = {
    Kind.SPEECH: Level.ROUTINE,
    Kind.DIRECT: Level.ROUTINE,
    Kind.ANNOUNCEMENT: Level.ROUTINE,
    Kind.ALL_CALL: Level.URGENT,
    Kind.EMERGENCY: Level.EMERGENCY,
}
OVERRIDE_LEVELS = (Level.ROUTINE, Level.URGENT)  # what a channel may give
DEFAULT_DUCK_DB = -15
DUCK_DB_RANGE = (-40, 0)


def level_for(
    role: str, sub: str, settings: Mapping[str, Any] | None = None, kind: Kind = Kind.SPEECH
) -> Level:
    """A talker's level: its role's, raised by the channel's override for ``sub``, at least the
    kind's. Unknown roles are level 1."""
    level = ROLE_LEVEL.get(role, Level.ROUTINE)
    raised = overrides(settings).get(sub)
    if raised is not None and raised > level:
        level = raised
    return max(level, KIND_LEVEL[kind])


def overrides(settings: Mapping[str, Any] | None) -> dict[str, Level]:
    """The channel's per-user levels (entries outside 1..2 are ignored: only the CLI and the
    REST API write them, and both refuse them)."""
    raw = (settings or {}).get("priority") or {}
    out: dict[str, Level] = {}
    if isinstance(raw, Mapping):
        for user, level in raw.items():
            if isinstance(level, int) and level in OVERRIDE_LEVELS:
                out[str(user)] = Level(level)
    return out


def validate_override(level: int) -> Level:
    """A level a channel may give (1 or 2); ValueError otherwise."""
    if isinstance(level, bool) or level not in OVERRIDE_LEVELS:
        raise ValueError("a channel may set levels 1-2 only (level 3 is an open emergency)")
    return Level(level)


def listeners(settings: Mapping[str, Any] | None) -> frozenset[str]:
    """Members of the channel who may hear it but never talk in it."""
    raw = (settings or {}).get("listeners") or ()
    return frozenset(str(u) for u in raw) if isinstance(raw, list | tuple) else frozenset()


def is_listener(sub: str, settings: Mapping[str, Any] | None) -> bool:
    return sub in listeners(settings)


def duck_db(settings: Mapping[str, Any] | None) -> int:
    """How much listeners lower the other slots while a level >= 2 talker holds one."""
    raw = (settings or {}).get("duck_db")
    if isinstance(raw, int) and not isinstance(raw, bool):
        lo, hi = DUCK_DB_RANGE
        if lo <= raw <= hi:
            return raw
    return DEFAULT_DUCK_DB


def validate_duck_db(db: int) -> int:
    lo, hi = DUCK_DB_RANGE
    if isinstance(db, bool) or not lo <= db <= hi:
        raise ValueError(f"duck level must be {lo}..{hi} dB")
    return db
