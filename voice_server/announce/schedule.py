"""Scheduled announcements: the ``schedule`` of a request and when it fires next (pure).

``{"at": "2026-12-24T17:00"}`` fires once; ``{"daily_at": "17:00", "days": ["mon", …]}`` fires
on those weekdays (no ``days``: every day). Times are wall-clock times in the deployment's
``display_timezone`` unless the schedule names another IANA zone (``"timezone":
"Asia/Tokyo"``); an ``at`` with an explicit offset is taken as given. A fire found more than
:data:`LATE_MS` late (the server was down) is recorded ``missed`` and not played late.
Each refusal is an :class:`~voice_server.announce.request.AnnounceError` (4xx).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voice_server.announce.request import AnnounceError

__all__ = ["DAYS", "LATE_MS", "Schedule", "due", "next_fire", "parse_schedule"]

LATE_MS = 5 * 60 * 1000
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_FIELDS = frozenset({"at", "daily_at", "days", "timezone"})


@dataclass(frozen=True, slots=True)
class Schedule:
    timezone: str
    at_ms: int | None = None  # once
    daily_at: str | None = None  # "HH:MM"
    days: tuple[str, ...] = DAYS

    def as_json(self) -> dict[str, Any]:
        if self.at_ms is not None:
            local = datetime.fromtimestamp(self.at_ms / 1000, UTC).astimezone(self.zone)
            return {"at": local.isoformat(timespec="minutes"), "timezone": self.timezone}
        return {"daily_at": self.daily_at, "days": list(self.days), "timezone": self.timezone}

    @property
    def zone(self) -> tzinfo:
        return ZoneInfo(self.timezone)


def _bad(message: str) -> AnnounceError:
    return AnnounceError("bad_schedule", message)


def _zone(name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > 64 or ".." in name:
        raise AnnounceError("unknown_timezone", "timezone must be an IANA zone name")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise AnnounceError("unknown_timezone", f"unknown time zone {name!r}") from None
    return name


def parse_schedule(raw: Any, default_zone: str, now_ms: int) -> Schedule:
    """The schedule of a request (AnnounceError: malformed, unknown zone, in the past)."""
    if not isinstance(raw, Mapping):
        raise _bad("schedule must be an object: {'at': ...} or {'daily_at': ..., 'days': [...]}")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise _bad(f"unknown schedule field(s): {', '.join(sorted(unknown))}")
    zone_name = _zone(raw["timezone"]) if "timezone" in raw else _zone(default_zone)
    zone = ZoneInfo(zone_name)
    if ("at" in raw) == ("daily_at" in raw):
        raise _bad("a schedule has either 'at' or 'daily_at'")
    if "at" in raw:
        if "days" in raw:
            raise _bad("'days' goes with 'daily_at'")
        text = raw["at"]
        if not isinstance(text, str) or len(text) > 40:
            raise _bad("'at' must be a date and time such as 2026-12-24T17:00")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise _bad("'at' must be a date and time such as 2026-12-24T17:00") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=zone)
        at_ms = int(when.timestamp() * 1000)
        if at_ms <= now_ms:
            raise AnnounceError("schedule_in_past", "'at' is in the past")
        return Schedule(zone_name, at_ms=at_ms)
    hhmm = raw["daily_at"]
    if not isinstance(hhmm, str) or not _HHMM.match(hhmm):
        raise _bad("'daily_at' must be HH:MM (24 h)")
    days = raw.get("days", list(DAYS))
    if (
        not isinstance(days, list)
        or not days
        or not all(isinstance(d, str) and d.lower() in DAYS for d in days)
    ):
        raise _bad(f"'days' must be a non-empty list of {', '.join(DAYS)}")
    chosen = tuple(d for d in DAYS if d in {x.lower() for x in days})
    return Schedule(zone_name, daily_at=hhmm, days=chosen)


def next_fire(s: Schedule, after_ms: int) -> int | None:
    """The first fire time strictly after ``after_ms`` (None: a one-off already past)."""
    if s.at_ms is not None:
        return s.at_ms if s.at_ms > after_ms else None
    assert s.daily_at is not None
    hour, minute = (int(x) for x in s.daily_at.split(":"))
    zone = s.zone
    day: date = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(zone).date()
    for _ in range(8):
        if DAYS[day.weekday()] in s.days:
            ms = int(datetime.combine(day, time(hour, minute), zone).timestamp() * 1000)
            if ms > after_ms:
                return ms
        day += timedelta(days=1)
    return None  # not reached: every week has each day


def due(next_ms: int, now_ms: int) -> str:
    """``wait`` (not yet), ``fire`` (now, at most 5 min late) or ``missed``."""
    if now_ms < next_ms:
        return "wait"
    return "fire" if now_ms - next_ms <= LATE_MS else "missed"


def schedule_from_json(data: Mapping[str, Any]) -> Schedule:
    """Back from :meth:`Schedule.as_json`-like stored form (``at_ms`` kept exact)."""
    if data.get("at_ms") is not None:
        return Schedule(str(data["timezone"]), at_ms=int(data["at_ms"]))
    return Schedule(str(data["timezone"]), daily_at=str(data["daily_at"]), days=tuple(data["days"]))


def schedule_to_store(s: Schedule) -> dict[str, Any]:
    if s.at_ms is not None:
        return {"timezone": s.timezone, "at_ms": s.at_ms}
    return {"timezone": s.timezone, "daily_at": s.daily_at, "days": list(s.days)}


__all__ += ["schedule_from_json", "schedule_to_store"]
