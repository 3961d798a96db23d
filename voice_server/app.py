"""The FastAPI application factory and its lifespan (one process, one event loop)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles

from voice_server.accounts.bundle import Accounts
from voice_server.accounts.users import Assignment
from voice_server.alerts.emergency import EmergencyAlerts
from voice_server.alerts.model import Alert, AlertKind
from voice_server.alerts.service import AlertService
from voice_server.alerts.store import AlertStore
from voice_server.announce.schedule_store import ScheduleStore
from voice_server.announce.scheduler import Scheduler
from voice_server.announce.service import Announcer
from voice_server.announce.stage import PlaneStage
from voice_server.announce.store import Announcement, AnnouncementStore
from voice_server.backends.seam import (
    is_postgres,
    open_call_log,
    open_clip_store,
    open_database,
    open_job_locks,
    open_job_queue,
    open_notifications,
    purge_store,
)
from voice_server.calllog.purge import Purger
from voice_server.calllog.schedule import PurgeSchedule
from voice_server.cluster_node import ClusterNode
from voice_server.config import Config
from voice_server.identity.keys import load_or_create_key
from voice_server.media.plane import MediaPlane
from voice_server.metrics import Family, SignalingCounters
from voice_server.process_metrics import GC, process_families
from voice_server.replay.presence import PresenceLog
from voice_server.replay.sampler import PresenceSampler
from voice_server.signaling.emergency import EmergencyChange, EmergencyDesk
from voice_server.signaling.endpoint import serve_signaling
from voice_server.signaling.hub import Hub
from voice_server.signaling.livehub import LiveHub
from voice_server.state import AppState
from voice_server.store.channels import ChannelStore
from voice_server.transcribe.link_server import LinkHub
from voice_server.transcribe.metrics import spool_families
from voice_server.transcribe.monitor import TranscriptionMonitor
from voice_server.transcribe.phrase_store import open_store as open_phrase_store
from voice_server.transcribe.spool import SpoolWriter
from voice_server.transcribe.supervise import TranscriberSupervisor
from voice_server.transcribe.tap import BurstTap
from voice_server.web import (
    api,
    api_admin,
    api_alerts,
    api_announce,
    api_audit,
    api_auth,
    api_emergency,
    api_recorded,
    api_replay,
    api_schedules,
    api_webhooks,
    asr_phrases,
    dashboard,
    dashboard_alerts,
    dashboard_webhooks,
    events_ws,
    health,
    signin_pages,
)
from voice_server.web import live as live_ws
from voice_server.web.announce_schedule import fire_as_author
from voice_server.web.common import validation_error_handler
from voice_server.web.pages import PageExit, page_exit_handler
from voice_server.web.security import SecurityHeaders
from voice_server.web.static import find_web_dir, web_files
from voice_server.web.templating import STATIC_DIR
from voice_server.webhooks.dispatch import Dispatcher, Outbox
from voice_server.webhooks.store import WebhookStore
from voice_server.workers.pool import WorkerPool

log = logging.getLogger(__name__)


def build_state(config: Config, *, incarnation: str | None = None) -> AppState:
    """Open the data directory: key, database (migrated), stores, hub; with a Redis URL, this
    node of the cluster (``incarnation``: this process's, as checked at start-up)."""
    key = load_or_create_key(config.data_dir)
    db = open_database(config.database_url, config.data_dir)
    channels = ChannelStore(db)
    accounts = Accounts.open(db)
    counters = SignalingCounters()
    hub = Hub(
        key=key,
        channels=channels,
        directory=accounts.directory,
        grace_seconds=config.grace_seconds,
        token_warning_seconds=config.token_warning_seconds,
        counters=counters,
        turn=config.turn,
    )
    calllog = open_call_log(config.database_url, config.data_dir, db)
    link = LinkHub(key)

    tap = BurstTap(
        hub.speaker, queue_limit=config.tap_queue_packets, live=link, route_of=hub.burst_route
    )
    tap.kind_of = lambda sid: "emergency" if sid in hub.holds else "speech"
    spool = SpoolWriter(config.data_dir, tap, calllog, config.spool_quota_mb * 1024 * 1024)
    clips = open_clip_store(db, config.data_dir)
    if is_postgres(config.database_url):
        spool.jobs = open_job_queue(db)  # a transcription job per ended burst (README)
        spool.clips = clips  # uploaded after each burst's fsync
    pool = _worker_pool(config, hub, tap)  # None: one process (the default)
    media = pool or MediaPlane(
        tap=tap if config.call_log else None,
        host=config.media_host,
        port=config.media_port,
        tcp_port=config.media_tcp_port,
        announce_ip=config.announce_ip,
        slots=config.slots,
        events=hub,
        on_transport_lost=hub.media_lost,
        red=config.audio_red,
    )
    hub.media = media
    live = LiveHub(hub, config.zone, config.live_queue)
    hub.watchers.append(live.on_signal)
    hub.stats_watchers.append(live.on_stats)
    link.on_partial.append(live.on_partial)
    link.on_committed.append(live.on_committed)
    supervisor = TranscriberSupervisor.from_config(config)
    monitor = TranscriptionMonitor(
        config.data_dir,
        link,
        link.counters,
        call_log=config.call_log,
        supervisor=supervisor,
    )
    state = AppState(
        config=config,
        db=db,
        channels=channels,
        hub=hub,
        counters=counters,
        media=media,
        accounts=accounts,
        key=key,
        calllog=calllog,
        link=link,
        spool=spool,
        live=live,
        clips=clips,
        transcription=monitor,
        supervisor=supervisor,
    )
    state.phrases = open_phrase_store(db, config.data_dir)
    state.job_locks = locks = open_job_locks(db)  # the jobs that run once per deployment
    state.metrics.register(locks.families)
    state.announcer = Announcer(
        store=AnnouncementStore(db),
        calllog=calllog,
        stage=PlaneStage(media, lambda ch: [(s.id, s.sub) for s in hub.registry.in_channel(ch)]),
        sources=hub.sources,
        source_levels=hub.source_levels,
        members=lambda ch: accounts.users.assignments(ch)[Assignment.MEMBER],
        data_dir=config.data_dir,
        clips=clips,
    )
    state.alerts = AlertService(
        AlertStore(db), accounts.audit, calllog if config.call_log else None
    )
    link.on_committed.append(state.alerts.commit_seen)
    # PostgreSQL: NOTIFY wakes the keyword matcher and the alert feed (None: SQLite polls)
    state.alerts.notifications = open_notifications(db)
    state.alerts.locks = locks
    state.emergencies = EmergencyAlerts(state.alerts, config.emergency_escalate_seconds)
    state.emergencies.locks = locks
    desk = hub.emergency = EmergencyDesk(hub, state.emergencies, config.emergency_window_seconds)
    state.alerts.feed.listeners.append(lambda alert: _to_desk(desk, alert))
    state.webhooks = WebhookStore(db)
    state.dispatcher = Dispatcher(
        state.webhooks, accounts.audit, tuple(config.webhook_backoff_seconds)
    )
    state.dispatcher.locks = locks
    outbox = Outbox(state.webhooks, config.public_url)
    state.alerts.outbox.append(outbox.on_alert)
    state.announcer.on_sent.append(lambda a, reached: _announcement_sent(state, outbox, a, reached))
    state.alerts.committed.append(state.dispatcher.nudge)
    state.metrics.register(state.dispatcher.families)
    state.metrics.register(state.alerts.families)
    state.schedules = ScheduleStore(db)
    state.scheduler = Scheduler(state.schedules, fire_as_author(state), locks=locks)
    state.presence = PresenceLog(started_ms=time.time_ns() // 1_000_000)
    state.presence_sampler = PresenceSampler(
        state.presence,
        lambda: [(s.channel, s.sub) for s in hub.registry if media.media_connected(s.id)],
    )
    state.metrics.register(counters.families)
    state.metrics.register(state.presence_sampler.families)
    state.metrics.register(state.scheduler.families)
    state.metrics.register(state.collect_sessions)
    state.metrics.register(media.families)
    state.metrics.register(link.families)
    state.metrics.register(lambda: spool_families(spool))
    state.metrics.register(monitor.families)
    state.metrics.register(live.families)
    state.metrics.register(
        lambda: [Family("voice_channels", "gauge", "Configured channels").add(channels.count())]
    )
    if config.redis_url is not None:
        state.cluster = ClusterNode(
            config,
            hub,
            incarnation or uuid.uuid4().hex,
            live,
            plane=media if isinstance(media, MediaPlane) else None,
            key=key,
        )
        state.metrics.register(state.cluster.families)
    state.metrics.register(lambda: process_families(debug_objects=config.debug_objects))
    state.metrics.register(GC.install().families)
    return state


def _worker_pool(config: Config, hub: Hub, tap: BurstTap) -> WorkerPool | None:
    """The media workers of ``serve --workers N`` (README "Several processes on one machine");
    None with one."""
    if config.worker_count == 1:
        return None
    return WorkerPool(
        config, events=hub, on_transport_lost=hub.media_lost, tap=tap if config.call_log else None
    )


def _to_desk(desk: EmergencyDesk, alert: Alert) -> None:
    """The alert feed's emergencies, to the sessions of their channel."""
    if alert.kind is not AlertKind.EMERGENCY:
        return
    by = alert.resolved_by or alert.acked_by or alert.raised_by
    desk.on_alert(
        EmergencyChange(alert.id, alert.channel, alert.state.value, by, alert.subject,
                        alert.resolution)
    )  # fmt: skip


def _announcement_sent(
    state: AppState, outbox: Outbox, a: Announcement, reached: list[str]
) -> None:
    """``announcement.sent`` to the webhooks that take it (blocking: the announcer's thread)."""
    assert state.webhooks is not None and state.dispatcher is not None
    with state.webhooks.db.transaction() as conn:
        outbox.on_announcement(conn, a.id, (a.author, a.author_name), a.text, a.urgent, reached)
    state.dispatcher.nudge()


def create_app(config: Config, *, incarnation: str | None = None) -> FastAPI:
    state = build_state(config, incarnation=incarnation)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(state.spool.start)  # completes .part files a crash left
        await state.media.start()
        state.hub.start()
        if state.presence_sampler is not None:
            state.presence_sampler.start()
        if state.scheduler is not None:
            state.scheduler.start()
        supervisor = state.supervisor
        if supervisor is not None:
            supervisor.start()
        state.transcription.start()
        if state.alerts is not None:
            await state.alerts.start(lambda: state.transcription.state.value)
        if state.emergencies is not None:
            state.emergencies.start()
        if state.dispatcher is not None:
            state.dispatcher.start()
        purger = Purger(config.data_dir, state.accounts.audit, purge_store(state.db))
        purge = PurgeSchedule(purger, config, state.job_locks)
        purge.start()
        if state.cluster is not None:
            await state.cluster.start()  # reports this node; joins are admitted from here
        state.started = True
        log.info("voice server ready", extra={"data_dir": str(config.data_dir)})
        try:
            yield
        finally:
            state.stopping = True
            if state.cluster is not None:
                await state.cluster.stop()  # leaves the cluster: its records go now
            await purge.stop()
            if state.dispatcher is not None:
                await state.dispatcher.stop()
            if state.emergencies is not None:
                await state.emergencies.stop()
            if state.alerts is not None:
                await state.alerts.stop()
            if state.announcer is not None:
                await state.announcer.stop()
            if state.presence_sampler is not None:
                await state.presence_sampler.stop()
            if state.scheduler is not None:
                await state.scheduler.stop()
            await state.transcription.stop()
            if supervisor is not None:
                await supervisor.stop()
            await state.hub.stop()
            await state.media.stop()  # ends every burst in flight
            await asyncio.to_thread(state.spool.stop)  # ... and writes them out
            state.job_locks.close()
            state.db.close()

    app = FastAPI(
        title="voice-server",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI needs inline scripts and a CDN: not under our CSP
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.voice = state
    app.add_middleware(SecurityHeaders)
    app.add_exception_handler(PageExit, page_exit_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.include_router(health.router)
    app.include_router(api_auth.router)
    app.include_router(api_admin.router)
    app.include_router(asr_phrases.router)
    app.include_router(api_audit.router)
    app.include_router(signin_pages.router)
    app.include_router(dashboard.router)
    app.include_router(dashboard_alerts.router)
    app.include_router(dashboard_webhooks.router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.include_router(api_schedules.router)  # before /announcements/{id}
    app.include_router(api_announce.router)
    app.include_router(api_alerts.router)
    app.include_router(api_emergency.router)
    app.include_router(api_webhooks.router)
    app.include_router(api_recorded.router)
    app.include_router(api.router)
    app.include_router(api_replay.router)
    app.include_router(live_ws.router)
    app.include_router(events_ws.router)

    @app.websocket("/internal/transcription")
    async def transcription_link(ws: WebSocket) -> None:
        await state.link.serve(ws)

    @app.websocket("/ws")
    async def signaling(ws: WebSocket) -> None:
        await serve_signaling(
            ws,
            state.hub,
            join_timeout=config.join_timeout_seconds,
            rate=config.rate_per_second,
            burst=config.rate_burst,
            queue_size=config.send_queue,
        )

    # The phone client at "/" (mounted last: every route above takes precedence).
    web_dir = find_web_dir(config.web_dir)
    if web_dir is not None:
        app.mount("/", web_files(web_dir), name="web")
    else:
        log.warning("phone client files not found: / serves nothing")
    return app
