"""The pure modules import no I/O libraries: they stay unit-testable in milliseconds."""

import subprocess
import sys

import pytest

PURE = [
    "voice_server.names",
    "voice_server.signaling.messages",
    "voice_server.signaling.sessions",
    "voice_server.ratelimit",
    "voice_server.identity.tokens",
    "voice_server.identity.principal",
    "voice_server.metrics",
    "voice_server.audit.chain",
    "voice_server.audit.export",
    "voice_server.accounts.lockout",
    "voice_server.accounts.validate",
    "voice_server.web.policy",
    "voice_server.web.i18n",
    "voice_server.web.i18n_alerts",
    "voice_server.alerts.model",
    "voice_server.alerts.keywords",
    "voice_server.identity.derived",
    "voice_server.calllog.normalize",
    "voice_server.calllog.model",
    "voice_server.calllog.plan",
    "voice_server.calllog.retention",
    "voice_server.calllog.localtime",
    "voice_server.web.highlight",
    "voice_server.bench.search_data",
    "voice_server.calllog.ogg",
    "voice_server.transcribe.packets",
    "voice_server.calllog.burst",
    "voice_server.transcribe.protocol",
    "voice_server.transcribe.errorrate",
    "voice_server.transcribe.catalogue",
    "voice_server.media.route",
    "voice_server.media.negotiation",
    "voice_server.talk.priority",
    "voice_server.media.framing",
    "voice_server.media.tcp_peers",
    "voice_server.signaling.diagnostics",
    "voice_server.announce.request",
    "voice_server.announce.heard",
    "voice_server.store.dburl",
    "voice_server.store.pg_schema",
    "voice_server.calllog.pgsearch",
    "voice_server.calllog.rows",
    "voice_server.calllog.replay",
    "voice_server.replay.presence",
    "voice_server.replay.listing",
    "voice_server.announce.schedule",
    "voice_server.media.relay_packet",
    "voice_server.media.relay_targets",
    "voice_server.media.quiet_gate",
    "voice_server.talk.arbiter",
    "voice_server.workers.placement",
    "voice_server.workers.ownership",
    "voice_server.workers.control",
    "voice_server.cluster.link",
    "voice_server.cluster.timing",
]
FORBIDDEN = {
    "asyncio",
    "aiortc",
    "aioice",
    "av",
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlite3",
    "psycopg",
    "vosk",
    "websockets",
}


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io_library(module: str) -> None:
    code = (
        f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert not (loaded & FORBIDDEN), f"{module} pulls in {sorted(loaded & FORBIDDEN)}"
