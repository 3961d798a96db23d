"""The call-log store interface: what the transcriber, the API and (later) the dashboard,
retention and export need. :class:`~voice_server.calllog.sqlite.SqliteCallLog` is the embedded
default; another backend (e.g. PostgreSQL) implements the same protocol.

Semantics every backend keeps:
- ``add_utterance`` and ``add_gap`` are idempotent per burst id: a burst is *done* once either
  exists, and adding it again returns False (the transcriber may retry after a crash).
- ``search`` returns newest first (by start time), at most ``limit`` items, and a rowid to pass
  back for the next page; 3+ character terms use the full-text index, 1-2 character terms the
  side index; never a scan of the whole log.
- ``delete`` removes utterances from the table, the full-text index and the side index together.
- Every stored utterance appends one entry to the commit event sequence in the same transaction
  (``events_after``: entries with a larger ``seq``, oldest first). Features that react to commits
  (keyword alerts, replay counts, "who heard it", webhooks) read this, never the live link: the
  transcriber also commits through its spool catch-up while the link is down.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from voice_server.calllog.model import CommitEvent, Gap, SearchPage, SearchQuery, Utterance

__all__ = ["CallLog"]


class CallLog(Protocol):
    def add_utterance(
        self, utterance: Utterance, *, burst_end_ms: int | None = None, committed_ms: int
    ) -> bool:
        """Store an utterance (and index it); False when this burst is already done."""
        ...

    def add_gap(self, gap: Gap, *, created_ms: int) -> bool:
        """Record a gap; False when this burst is already done."""
        ...

    def done(self, burst_ids: Iterable[str]) -> set[str]:
        """Which of these bursts have an utterance or a gap."""
        ...

    def get(self, burst_id: str) -> Utterance | None: ...

    def search(self, query: SearchQuery) -> SearchPage: ...

    def gaps(
        self, *, channels: frozenset[str] | None, since_ms: int | None, until_ms: int | None
    ) -> list[Gap]: ...

    def delete(self, burst_ids: Iterable[str]) -> int:
        """Remove utterances with their index entries; return how many were removed."""
        ...

    def events_after(self, seq: int, limit: int = 100) -> list[CommitEvent]:
        """Commit events with ``seq`` greater than ``seq``, oldest first, at most ``limit``."""
        ...

    def last_event_seq(self) -> int:
        """The newest commit event's seq (0 when none): where a new reader starts."""
        ...

    def replay(
        self,
        channel: str,
        viewer: str,
        *,
        since_ms: int,
        before_rowid: int | None = None,
        limit: int = 50,
    ) -> SearchPage:
        """Rows of ``channel`` since ``since_ms`` that ``viewer`` may replay (no one else's
        direct talks), newest first, at most ``limit``; ``next_rowid`` pages back."""
        ...

    def commit_latencies_ms(self, since_ms: int) -> list[int]:
        """committed − burst end of the utterances committed live since ``since_ms``."""
        ...
