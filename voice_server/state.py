"""Everything one running server holds, built once from the Config in the app's lifespan."""

from __future__ import annotations

import ipaddress
import sqlite3
from dataclasses import dataclass, field

from voice_server.accounts.bundle import Accounts
from voice_server.alerts.emergency import EmergencyAlerts
from voice_server.alerts.service import AlertService
from voice_server.announce.schedule_store import ScheduleStore
from voice_server.announce.scheduler import Scheduler
from voice_server.announce.service import Announcer
from voice_server.calllog.clips import ClipStore
from voice_server.calllog.store import CallLog
from voice_server.cluster_node import ClusterNode
from voice_server.config import Config
from voice_server.media.plane import MediaPlane
from voice_server.metrics import Family, MetricsRegistry, SignalingCounters
from voice_server.replay.presence import PresenceLog
from voice_server.replay.sampler import PresenceSampler
from voice_server.signaling.hub import Hub
from voice_server.signaling.livehub import LiveHub
from voice_server.signaling.sessions import SessionState
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database, DatabaseError
from voice_server.store.job_lock import JobLocks, LocalJobLocks
from voice_server.transcribe.link_server import LinkHub
from voice_server.transcribe.monitor import TranscriptionMonitor
from voice_server.transcribe.phrase_store import PhraseStore
from voice_server.transcribe.spool import SpoolWriter
from voice_server.transcribe.supervise import TranscriberSupervisor
from voice_server.webhooks.dispatch import Dispatcher
from voice_server.webhooks.store import WebhookStore
from voice_server.workers.pool import WorkerPool

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class AppState:
    config: Config
    db: Database
    channels: ChannelStore
    hub: Hub
    counters: SignalingCounters
    media: MediaPlane | WorkerPool  # one process, or `serve --workers N`
    accounts: Accounts
    key: bytes  # the deployment key (signs tokens)
    calllog: CallLog
    link: LinkHub
    spool: SpoolWriter
    live: LiveHub  # the dashboard's live view (fed by the hub and the link)
    transcription: TranscriptionMonitor  # up / degraded / stopped, for pages and /readyz
    supervisor: TranscriberSupervisor | None = None  # `serve --transcriber`'s child
    announcer: Announcer | None = None  # spoken announcements (set by app.build_state)
    alerts: AlertService | None = None  # emergencies, keyword and transcription alerts
    emergencies: EmergencyAlerts | None = None  # raise, cancel, escalate (with ``alerts``)
    webhooks: WebhookStore | None = None  # signed webhook endpoints and their queue
    dispatcher: Dispatcher | None = None  # sends the queue's due deliveries
    schedules: ScheduleStore | None = None  # scheduled announcements
    scheduler: Scheduler | None = None  # fires them (one winner per fire per deployment)
    presence: PresenceLog | None = None  # who had connected media where (missed-message replay)
    presence_sampler: PresenceSampler | None = None
    clips: ClipStore | None = None  # where clips are read (files; on PostgreSQL also its table)
    phrases: PhraseStore | None = None  # the ASR phrase list (a file; on PostgreSQL a row)
    cluster: ClusterNode | None = None  # this node of a cluster (`serve --redis-url`)
    # the periodic jobs that run once per deployment (PostgreSQL: advisory locks)
    job_locks: JobLocks = field(default_factory=LocalJobLocks)
    metrics: MetricsRegistry = field(default_factory=MetricsRegistry)
    started: bool = False
    stopping: bool = False

    @property
    def metrics_networks(self) -> list[Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.config.metrics_allow]

    def readiness(self) -> dict[str, bool | str]:
        """``/readyz``'s checks: the booleans decide readiness; ``transcription`` (up,
        degraded, stopped, off) is reported without failing it (calls work without it)."""
        checks: dict[str, bool | str] = dict(self._ready_checks())
        checks["transcription"] = self.transcription.state.value
        return checks

    def _ready_checks(self) -> dict[str, bool]:
        try:
            with self.db.connection() as conn:
                conn.execute("SELECT 1").fetchone()
            db_ok = True
        except (sqlite3.Error, DatabaseError):  # DatabaseError: PostgreSQL unreachable
            db_ok = False
        draining = self.cluster is not None and self.cluster.draining
        return {
            "started": self.started,
            "database": db_ok,
            "accepting": not self.stopping and not draining,
        }

    def collect_sessions(self) -> list[Family]:
        counts = self.hub.session_counts()
        sessions = Family("voice_sessions", "gauge", "Signaling sessions by state")
        for state in (SessionState.ATTACHED, SessionState.DETACHED):
            sessions.add(counts[state], state=state.value)
        active = Family("voice_active_channels", "gauge", "Channels with at least one session")
        active.add(len(self.hub.registry.channels()))
        diag = self.hub.diagnostics
        paths = Family(
            "voice_participants_by_path",
            "gauge",
            "Participants by the media path their last stats report named (client-reported)",
        )
        for path, count in diag.path_counts().items():
            paths.add(count, path=path)
        reports = Family("voice_stats_reports_total", "counter", "Client stats reports")
        reports.add(diag.accepted, outcome="kept")
        reports.add(diag.limited, outcome="rate_limited")
        return [sessions, active, paths, reports]
