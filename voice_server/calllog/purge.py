"""The retention purge: removes what each channel's retention says has expired (a legal hold
stops it) — utterances with their trigram and side-index entries, gaps, clips and spool files —
and then scrubs the bytes, so the text is gone from the database file, its WAL and the data
directory, not merely unlinked. Each purged channel is one audit row (``calllog.purge``).

How the bytes go (measured on 1 M utterances, README): deletes run with ``PRAGMA
secure_delete=ON`` (SQLite overwrites deleted cells and freed pages with zeros — without it the
text stayed in free space); then ``optimize`` on both FTS5 indexes (a delete only adds delete
markers; the old postings, from which a text could be pieced together, stay in their segments
until a merge rewrites them: about 1-2 s per index at 1 M rows); then
``wal_checkpoint(TRUNCATE)`` (the WAL, which held the inserted text, is emptied to 0 bytes).
``VACUUM`` would also do it but rewrites the whole file each time (3 s at 1 M rows, all writers
blocked): not used.

Runs on its own connection, in short transactions (1000 rows), off the event loop: scheduled by
the server every ``purge_interval_seconds`` and by ``voice-server purge [--dry-run]``. The
database side is a :class:`~voice_server.calllog.purge_store.PurgeStore` (SQLite by default; on
PostgreSQL :mod:`.purge_pg`, which cannot scrub freed bytes: see there).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from voice_server.audit.log import AuditLog, AuditSubject
from voice_server.calllog.burst import CLIPS_DIR, DONE, SHARED_CLIPS, SPOOL_DIR, BurstMeta
from voice_server.calllog.model import BURST_ID_RE, iso, ms_to_rowid
from voice_server.calllog.ogg import OggError, read_ogg_opus
from voice_server.calllog.purge_store import PurgeStore, SqlitePurgeStore
from voice_server.calllog.retention import Cutoff, cutoffs, unknown_channel_cutoff

__all__ = ["ChannelPurge", "PurgeReport", "Purger"]

BATCH = 1000
UNKNOWN_CHANNEL = "?"


@dataclass(slots=True)
class ChannelPurge:
    channel: str
    before: str
    utterances: int = 0
    gaps: int = 0
    files: int = 0

    @property
    def anything(self) -> bool:
        return bool(self.utterances or self.gaps or self.files)


@dataclass(slots=True)
class PurgeReport:
    dry_run: bool
    channels: list[ChannelPurge] = field(default_factory=list)
    spool_files: int = 0
    scrubbed: bool = False
    wal_truncated: bool = False
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Purger:
    def __init__(
        self,
        data_dir: Path,
        audit: AuditLog,
        store: Callable[[], PurgeStore] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.db_path = self.data_dir / "voice.db"
        self._audit = audit
        self._open = store or (lambda: SqlitePurgeStore(self.db_path))

    def run(
        self, now_ms: int, *, actor: AuditSubject | str = "system:purge", dry_run: bool = False
    ) -> PurgeReport:
        started = time.monotonic()
        report = PurgeReport(dry_run=dry_run)
        conn = self._open()
        try:
            rules = conn.rules()
            cuts = cutoffs(rules, now_ms)
            for cut in cuts:
                done = self._channel(conn, cut, dry_run)
                report.channels.append(done)
                if done.anything and not dry_run:
                    self._audit.record(
                        actor,
                        "calllog.purge",
                        f"channel:{cut.channel}",
                        {
                            "before": done.before,
                            "utterances": done.utterances,
                            "gaps": done.gaps,
                            "files": done.files,
                        },
                    )
            report.spool_files = self._unknown(conn, unknown_channel_cutoff(rules, now_ms), dry_run)
            report.spool_files += self._spool(cuts, dry_run)
            if not dry_run and any(c.utterances or c.gaps for c in report.channels):
                report.scrubbed, report.wal_truncated = True, conn.scrub()
        finally:
            conn.close()
        report.seconds = round(time.monotonic() - started, 3)
        return report

    def sweep_files(self, now_ms: int) -> int:
        """The data directory's part of a purge another node ran (on PostgreSQL each node has
        its own directory): clip folders of whole days before each cutoff, expired spool files
        and damaged ones of no channel. No database change, no audit row; how many went."""
        conn = self._open()
        try:
            rules = conn.rules()
        finally:
            conn.close()
        cuts = cutoffs(rules, now_ms)
        removed = sum(self._old_clip_days(cut) for cut in cuts)
        removed += self._damaged(unknown_channel_cutoff(rules, now_ms), dry_run=False)
        return removed + self._spool(cuts, dry_run=False)

    # ------------------------------------------------------------------ one channel
    def _channel(self, conn: PurgeStore, cut: Cutoff, dry_run: bool) -> ChannelPurge:
        done = ChannelPurge(cut.channel, iso(cut.before_ms))
        before = ms_to_rowid(cut.before_ms)
        if dry_run:
            done.utterances, done.gaps = conn.count(cut.channel, before, cut.before_ms)
            return done
        while True:
            rows = conn.oldest(cut.channel, before, BATCH)
            if not rows:
                break
            done.utterances += conn.delete([uid for uid, _ in rows])
            for uid, clip in rows:
                done.files += self._remove(self._unshared(conn, clip)) + self._remove(
                    f"{SPOOL_DIR}/{uid}{DONE}"
                )
        done.gaps = conn.delete_gaps(cut.channel, cut.before_ms)
        done.files += self._old_clip_days(cut)
        return done

    @staticmethod
    def _unshared(conn: PurgeStore, clip: str | None) -> str | None:
        """A clip to delete with its row: a shared one (a broadcast's, ``clips/_shared/``) only
        when no other row (another channel's, maybe on legal hold) still plays it."""
        if clip and clip.startswith(SHARED_CLIPS + "/") and conn.clip_in_use(clip):
            return None
        return clip

    def _remove(self, relative: str | None) -> int:
        """Delete a file of the data directory (never outside it); 1 if it was there."""
        if not relative:
            return 0
        root = self.data_dir.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            return 0
        try:
            path.unlink()
        except FileNotFoundError:
            return 0
        return 1

    def _old_clip_days(self, cut: Cutoff) -> int:
        """Clip folders of whole days before the cutoff (``clips/<channel>/<yyyy-mm-dd>``, UTC):
        whatever is still in them (a file a crash left behind) goes too."""
        base = self.data_dir / CLIPS_DIR / cut.channel
        cutoff_day = datetime.fromtimestamp(cut.before_ms / 1000, UTC).strftime("%Y-%m-%d")
        removed = 0
        if not base.is_dir():
            return 0
        for day in base.iterdir():
            if day.is_dir() and len(day.name) == 10 and day.name < cutoff_day:
                for f in day.iterdir():
                    with contextlib.suppress(OSError):
                        f.unlink()
                        removed += 1
                with contextlib.suppress(OSError):
                    day.rmdir()
        return removed

    # ------------------------------------------------------------------ no channel known
    def _unknown(self, conn: PurgeStore, before_ms: int | None, dry_run: bool) -> int:
        """Gaps and damaged spool files whose channel is unknown (see ``retention``)."""
        if before_ms is None:
            return 0
        removed = self._damaged(before_ms, dry_run)
        if not dry_run:
            conn.delete_gaps(UNKNOWN_CHANNEL, before_ms)
        return removed

    def _damaged(self, before_ms: int | None, dry_run: bool) -> int:
        """Damaged spool files (their channel unknown) older than ``before_ms``."""
        if before_ms is None:
            return 0
        removed = 0
        damaged = self.data_dir / SPOOL_DIR / "damaged"
        if damaged.is_dir():
            for f in damaged.iterdir():
                if BURST_ID_RE.match(f.name[:19]) and int(f.name[:13]) < before_ms:
                    removed += 1
                    if not dry_run:
                        with contextlib.suppress(OSError):
                            f.unlink()
        return removed

    def _spool(self, cuts: list[Cutoff], dry_run: bool) -> int:
        """Spool files (not yet transcribed) of expired bursts: the channel is in their tags."""
        by_channel = {c.channel: c.before_ms for c in cuts}
        latest = max(by_channel.values(), default=None)
        spool = self.data_dir / SPOOL_DIR
        if latest is None or not spool.is_dir():
            return 0
        removed = 0
        for f in spool.glob(f"*{DONE}"):
            if not BURST_ID_RE.match(f.name[:19]) or int(f.name[:13]) >= latest:
                continue
            try:
                meta = BurstMeta.from_tags(read_ogg_opus(f.read_bytes()).tags)
            except (OSError, OggError, ValueError):
                continue
            before = by_channel.get(meta.channel)
            if before is not None and meta.start_ms < before:
                removed += 1
                if not dry_run:
                    with contextlib.suppress(OSError):
                        os.unlink(f)
        return removed
