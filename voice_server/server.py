"""Run the server process: logging, optional demo organisation, uvicorn with our limits."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys
import uuid

import uvicorn

from voice_server.accounts.bundle import Accounts
from voice_server.app import create_app
from voice_server.backends.seam import open_database
from voice_server.backends.seam import verify as verify_database
from voice_server.cluster.startup import redis_where
from voice_server.config import Config
from voice_server.demo import demo_credentials, ensure_demo_organisation
from voice_server.identity.keys import load_or_create_key
from voice_server.limits import raise_fd_limit
from voice_server.logs import setup_logging
from voice_server.signaling.messages import MAX_MESSAGE_BYTES
from voice_server.store.dburl import target_of
from voice_server.workers.ports import check_media_ports

log = logging.getLogger(__name__)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OSError(f"port {port} on {host} is already in use") from None
            raise OSError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _join_cluster(config: Config) -> str | None:
    """With a Redis URL: this process's incarnation, once Redis answered and no other live node
    holds the node id (StartRefused, one line, when not). None on one box."""
    if config.redis_url is None or config.node_id is None:
        return None
    from voice_server.cluster.keys import Keys
    from voice_server.cluster.startup import check_start
    from voice_server.cluster.timing import Timing

    incarnation = uuid.uuid4().hex
    asyncio.run(
        check_start(
            config.redis_url,
            Keys(config.cluster_prefix),
            Timing.derived(config.cluster_heartbeat_seconds, config.cluster_node_ttl_seconds),
            node_id=config.node_id,
            incarnation=incarnation,
            base_url=config.base_url,
        )
    )
    return incarnation


def run_server(config: Config, *, demo: bool = False) -> int:
    verify_database(config.database_url, config.data_dir)  # one line and exit 1 when unusable
    setup_logging(config.log_level)
    raise_fd_limit()  # one descriptor per signaling WebSocket
    _check_port(config.host, config.port)
    if config.worker_count > 1:  # worker i binds media_port + i alone: all must be free
        check_media_ports(
            config.media_host, config.media_port, config.worker_count, config.media_tcp_port
        )
    # last of the checks (a refusal after it would leave this node's first report to expire):
    # one line and exit 1 when Redis cannot be reached or a live node holds the id
    incarnation = _join_cluster(config)
    if demo:
        ensure_demo_organisation(
            Accounts.open(open_database(config.database_url, config.data_dir)),
            load_or_create_key(config.data_dir),
        )
    app = create_app(config, incarnation=incarnation)
    url = config.base_url
    print(f"voice-server listening on {url}  (signaling {url.replace('http', 'ws', 1)}/ws)")
    print(f"  phone app {url}/" + ("" if config.tls else "  (plain HTTP: phones need HTTPS)"))
    print(f"  health {url}/healthz  ready {url}/readyz  metrics {url}/metrics")
    print(f"  data directory {config.data_dir.resolve()}")
    print(f"  database {target_of(config.database_url, config.data_dir).describe()}")
    if config.node_id is not None and config.redis_url is not None:
        print(f"  cluster node {config.node_id} (Redis {redis_where(config.redis_url)})")
    if demo:
        print("Demo organisation (passwords stay until changed; tokens valid 10 h):")
        for line in demo_credentials(load_or_create_key(config.data_dir), url):
            print(line)
    sys.stdout.flush()
    uv = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        ws_max_size=MAX_MESSAGE_BYTES,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        ssl_certfile=str(config.tls_cert) if config.tls_cert else None,
        ssl_keyfile=str(config.tls_key) if config.tls_key else None,
    )
    uvicorn.Server(uv).run()
    return 0
