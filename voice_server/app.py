"""The FastAPI application factory and its lifespan (one process, one event loop)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, WebSocket

from voice_server.config import Config
from voice_server.identity.keys import load_or_create_key
from voice_server.identity.principal import TokenDirectory
from voice_server.media.plane import MediaPlane
from voice_server.metrics import Family, SignalingCounters
from voice_server.signaling.endpoint import serve_signaling
from voice_server.signaling.hub import Hub
from voice_server.state import AppState
from voice_server.store.channels import ChannelStore
from voice_server.store.database import Database, migrate
from voice_server.web import health
from voice_server.web.static import CommonHeaders, find_web_dir, web_files

log = logging.getLogger(__name__)


def build_state(config: Config) -> AppState:
    """Open the data directory: key, database (migrated), stores, hub."""
    key = load_or_create_key(config.data_dir)
    db = Database(config.database_path)
    with db.connection() as conn:
        migrate(conn)
    channels = ChannelStore(db)
    counters = SignalingCounters()
    hub = Hub(
        key=key,
        channels=channels,
        directory=TokenDirectory(),
        grace_seconds=config.grace_seconds,
        token_warning_seconds=config.token_warning_seconds,
        counters=counters,
    )
    media = MediaPlane(
        host=config.media_host,
        port=config.media_port,
        announce_ip=config.announce_ip,
        slots=config.slots,
        events=hub,
        on_transport_lost=hub.media_lost,
    )
    hub.media = media
    state = AppState(
        config=config, db=db, channels=channels, hub=hub, counters=counters, media=media
    )
    state.metrics.register(counters.families)
    state.metrics.register(state.collect_sessions)
    state.metrics.register(media.families)
    state.metrics.register(
        lambda: [Family("voice_channels", "gauge", "Configured channels").add(channels.count())]
    )
    return state


def create_app(config: Config) -> FastAPI:
    state = build_state(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.media.start()
        state.hub.start()
        state.started = True
        log.info("voice server ready", extra={"data_dir": str(config.data_dir)})
        try:
            yield
        finally:
            state.stopping = True
            await state.hub.stop()
            await state.media.stop()
            state.db.close()

    app = FastAPI(
        title="voice-server",
        version="1",
        lifespan=lifespan,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.voice = state
    app.include_router(health.router)

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
    app.add_middleware(CommonHeaders)
    web_dir = find_web_dir(config.web_dir)
    if web_dir is not None:
        app.mount("/", web_files(web_dir), name="web")
    else:
        log.warning("phone client files not found: / serves nothing")
    return app
