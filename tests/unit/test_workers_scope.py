"""A media worker process loads the media plane and nothing that runs a once-per-deployment
job or opens the database: those run in the parent only (README "Several processes")."""

from __future__ import annotations

import json
import subprocess
import sys

JOBS_AND_STORES = (
    "sqlite3",
    "voice_server.store",
    "voice_server.calllog",
    "voice_server.announce",
    "voice_server.alerts",
    "voice_server.webhooks",
    "voice_server.transcribe",
    "voice_server.signaling",
    "voice_server.web",
    "voice_server.app",
)


def test_a_media_worker_imports_no_job_store_or_signaling_module() -> None:
    code = (
        "import json, sys, voice_server.workers.media_worker;print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    bad = [m for m in loaded if any(m == p or m.startswith(p + ".") for p in JOBS_AND_STORES)]
    assert bad == []
