"""Dates typed and times shown in the dashboard's time zone (``display_timezone``, default
Asia/Tokyo) (pure). Inside the program times stay UTC milliseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo

__all__ = ["day_end_ms", "day_start_ms", "local_date", "local_text"]


def _day(text: str) -> date:
    """``YYYY-MM-DD``; raises ValueError for anything else."""
    if len(text) != 10:
        raise ValueError("a date is YYYY-MM-DD")
    return date.fromisoformat(text)


def day_start_ms(text: str, tz: tzinfo) -> int:
    """The first millisecond of that day in ``tz``."""
    return int(datetime.combine(_day(text), time(), tz).timestamp() * 1000)


def day_end_ms(text: str, tz: tzinfo) -> int:
    """The last millisecond of that day in ``tz`` (a day of 23 or 25 hours included)."""
    following = datetime.combine(_day(text) + timedelta(days=1), time(), tz)
    return int(following.timestamp() * 1000) - 1


def local_text(ms: int, tz: tzinfo) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in ``tz``."""
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def local_date(ms: int, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(tz).strftime("%Y-%m-%d")
