"""Configuration: defaults < TOML file (``--config``) < environment (``VOICE_…``) < CLI flags.

Read once by the CLI with :func:`load_config` and passed down; nothing reads settings globally.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from voice_server.identity.turncreds import TurnCredentials
from voice_server.identity.turncreds import check_url as check_turn_url
from voice_server.store.dburl import DatabaseTarget, check_url, target_of

MAX_WORKERS = 64
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CLUSTER_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def parse_workers(value: object) -> int | str:
    """A ``workers`` setting as given (a number, its text, or ``auto``), checked: 1..64 or
    ``auto``. Raises ValueError with a one-line reason."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return "auto"
        if not text.lstrip("+-").isdigit():
            raise ValueError(f"must be a whole number 1..{MAX_WORKERS} or auto, not {value!r}")
        value = int(text)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number 1..{MAX_WORKERS} or auto")
    if not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"must be 1..{MAX_WORKERS} or auto, not {value}")
    return value


def resolve_workers(value: int | str, cores: int | None = None) -> int:
    """The number of workers a checked setting means (``auto``: the usable cores, at most 64)."""
    if value == "auto":
        return max(1, min(MAX_WORKERS, cores if cores is not None else usable_cores()))
    assert isinstance(value, int)
    return value


class ConfigError(Exception):
    """The configuration cannot be used; the message is one line for the CLI."""


class Config(BaseSettings):
    """Every setting of one server process. Field names are the TOML keys; ``VOICE_<NAME>`` the
    environment variables; ``--name-with-dashes`` the CLI flags where one exists."""

    model_config = SettingsConfigDict(env_prefix="VOICE_", extra="forbid", frozen=True)

    # HTTP / signaling
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Path("./data")
    # None: SQLite in data_dir (voice.db); sqlite:PATH; postgresql://… (README "PostgreSQL")
    database_url: str | None = None
    public_url: str | None = None
    log_level: str = "info"
    # HTTPS: PEM certificate (chain) and private key; both or neither
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # the phone client's static files (default: clients/web of the source tree)
    web_dir: Path | None = None

    # a cluster of nodes (README "Cluster"): this node's id and the deployment's Redis; None: one
    # box (the default). A cluster needs a PostgreSQL database_url (the nodes share it).
    node_id: str | None = None
    redis_url: str | None = None
    cluster_prefix: str = "voice"  # the deployment's Redis key prefix ({voice}:...)
    cluster_heartbeat_seconds: float = Field(1.0, ge=0.05, le=30)
    # a node is dead once its last report is this old; leases last as long
    cluster_node_ttl_seconds: float = Field(5.0, ge=0.2, le=300)
    drain_seconds: float = Field(30.0, ge=0, le=3600)  # `drain`'s default deadline
    # the media relay between nodes (README "Channels across nodes"): the address other nodes
    # reach this node's relay socket on (the private network), and its UDP port (0: any free)
    cluster_relay_host: str = "127.0.0.1"
    cluster_relay_port: int = Field(0, ge=0, le=65535)
    # encrypt the relay datagrams between nodes (ChaCha20-Poly1305; README "Cluster"): for a
    # private network that is not trusted. Every node of a deployment sets the same value
    cluster_relay_encrypt: bool = False

    # media plane
    media_host: str = "127.0.0.1"
    media_port: int = Field(40000, ge=0, le=65535)
    # ICE-TCP passive candidate (RFC 6544) for browsers where UDP is blocked: None = the media
    # port's number on TCP, 0 = off
    media_tcp_port: int | None = Field(None, ge=0, le=65535)
    announce_ip: str | None = None
    # TURN relay (coturn, README "Networks that allow only HTTPS"): URLs sent to clients with
    # time-limited credentials (TURN REST API, the secret shared with coturn's
    # static-auth-secret); empty: no relay
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr | None = None
    turn_ttl_seconds: int = Field(86400, ge=60, le=7 * 86400)
    slots: int = Field(3, ge=1, le=8)
    # media processes (README "Several processes on one machine"): 1..64 or "auto" (the usable
    # cores); worker i forwards on media_port + i
    workers: int | str = 1
    # how a new participant is given a worker: least-loaded (preferring one that carries its
    # channel) or round-robin (tests: one channel's members spread over every worker)
    workers_placement: Literal["least-loaded", "round-robin"] = "least-loaded"
    # audio RED (RFC 2198) offered first on every m-line (Chromium sends and hears it; the
    # others get the primary frame): false offers Opus alone
    audio_red: bool = True

    # sessions and signaling limits
    grace_seconds: float = Field(10.0, ge=0, le=300)
    join_timeout_seconds: float = Field(10.0, gt=0, le=120)
    rate_per_second: float = Field(20.0, gt=0)
    rate_burst: int = Field(50, ge=1)
    send_queue: int = Field(256, ge=8, le=65536)
    token_warning_seconds: int = Field(300, ge=10)

    # accounts and the web: lifetimes, cookies
    session_ttl_seconds: int = Field(43200, ge=30, le=31 * 86400)
    session_warning_seconds: int = Field(600, ge=0, le=86400)  # the phone app warns this early
    join_token_ttl_seconds: int = Field(1800, ge=60, le=86400)
    signin_code_ttl_seconds: int = Field(600, ge=30, le=86400)
    cookie_secure: bool | None = None  # None: Secure when served over HTTPS or public_url is

    # transcription and the call log (docs/transcription.md)
    spool_quota_mb: int = Field(2048, ge=1)  # audio waiting to be transcribed, at most
    tap_queue_packets: int = Field(50_000, ge=100)  # spool writer backlog, at most
    clip_url_seconds: int = Field(600, ge=10, le=86_400)  # lifetime of signed clip URLs
    transcriber: bool = False  # `serve` starts and supervises a transcriber sidecar
    call_log: bool = True  # tap talk bursts into the spool for the call log; false: voice only
    model: str | None = None  # model directory (transcriber); default: see README
    asr_engine: str = "vosk"  # vosk | whisper (pip extra [whisper]); docs/transcription.md
    asr_language: str | None = None  # None: Vosk: the model's language, Whisper: ja
    models_dir: Path = Path("./models")

    # the dashboard's call log (docs/security.md: search, live view, export, retention)
    display_timezone: str = "Asia/Tokyo"  # dates typed and times shown in the dashboard
    export_max_rows: int = Field(100_000, ge=1, le=10_000_000)  # per call-log export
    live_queue: int = Field(256, ge=8, le=65536)  # messages buffered per live viewer
    purge_interval_seconds: float = Field(3600.0, ge=0)  # retention purge; 0: never scheduled

    # alerts (README "Alerts"): an emergency's open window and when an unacknowledged one
    # escalates to every supervisor and admin
    emergency_window_seconds: float = Field(10.0, ge=1, le=120)
    emergency_escalate_seconds: float = Field(30.0, ge=1, le=3600)
    # signed webhooks: seconds before each retry (10 over about an hour), then dead-lettered
    webhook_backoff_seconds: list[int] = Field(
        default_factory=lambda: [10, 30, 60, 120, 300, 420, 600, 600, 600, 660],
        min_length=1,
        max_length=30,
    )

    # who may read /metrics: client address networks
    metrics_allow: list[str] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    # leak tests: /metrics also counts live instances of the server's classes (walks the heap)
    debug_objects: bool = False

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"not a network: {net!r}") from None
        return value

    @field_validator("turn_urls")
    @classmethod
    def _turn_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            check_turn_url(url)
        return value

    @field_validator("display_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Tokyo)") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        return check_url(value) if value is not None and value.strip() else None

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str | None) -> str | None:
        if value is not None and not NODE_ID.fullmatch(value):
            raise ValueError("a node id is 1-64 of A-Z a-z 0-9 _ . - (not starting with _ . -)")
        return value

    @field_validator("cluster_relay_host")
    @classmethod
    def _relay_host(cls, value: str) -> str:
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError("must be an IP address other nodes reach (not a name)") from None
        if address.is_unspecified:
            raise ValueError("must be one address other nodes reach (not 0.0.0.0 or ::)")
        return str(address)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be redis://host:port/db, rediss://… or unix://PATH")
        return value.strip()

    @field_validator("cluster_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not CLUSTER_PREFIX.fullmatch(value):
            raise ValueError("a cluster key prefix is 1-64 of A-Z a-z 0-9 _ . -")
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> int | str:
        return parse_workers(value)

    @field_validator("asr_engine")
    @classmethod
    def _engine(cls, value: str) -> str:
        if value not in ("vosk", "whisper"):
            raise ValueError("must be vosk or whisper")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be debug, info, warning or error")
        return value.lower()

    @model_validator(mode="after")
    def _tls_pair(self) -> Config:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.turn_urls and not (self.turn_secret and self.turn_secret.get_secret_value()):
            raise ValueError("turn_urls needs turn_secret (coturn's static-auth-secret)")
        if self.redis_url is not None:
            if self.node_id is None:
                raise ValueError("redis_url needs node_id (--node-id: this node's name)")
            if target_of(self.database_url, self.data_dir).kind != "postgresql":
                raise ValueError(
                    "redis_url needs a postgresql:// database_url (the nodes share one store)"
                )
            if self.workers != 1:
                raise ValueError(
                    "a cluster node runs one media process: workers must be 1 with redis_url"
                )
        if self.cluster_node_ttl_seconds < 2 * self.cluster_heartbeat_seconds:
            raise ValueError("cluster_node_ttl_seconds must be at least two heartbeats")
        return self

    @property
    def turn(self) -> TurnCredentials | None:
        """What mints each participant's TURN credential; None without ``turn_urls``."""
        if not self.turn_urls or self.turn_secret is None:
            return None
        return TurnCredentials(
            tuple(self.turn_urls), self.turn_secret.get_secret_value(), self.turn_ttl_seconds
        )

    @property
    def worker_count(self) -> int:
        """How many media workers ``workers`` means here (``auto``: the usable cores)."""
        return resolve_workers(self.workers)

    @property
    def base_url(self) -> str:
        """This server's own base URL: ``public_url``, else its scheme, host and port (what
        it prints at start, and what a node of a cluster reports as where to reach it)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def database(self) -> DatabaseTarget:
        return target_of(self.database_url, self.data_dir)

    @property
    def database_path(self) -> Path:
        """The SQLite file: the store itself, or (while only the call log is on PostgreSQL)
        accounts, channels and the audit chain."""
        target = self.database
        return target.path if target.path is not None else self.data_dir / "voice.db"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.display_timezone)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    # Allow an optional [server] table as well as top-level keys.
    server = data.pop("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"config file {path}: [server] must be a table")
    return {**data, **server}


def load_config(config_file: Path | None = None, **overrides: Any) -> Config:
    """Build the configuration. ``overrides`` are CLI flags; ``None`` values are ignored."""
    file_values = _read_toml(config_file) if config_file is not None else {}
    cli_values = {k: v for k, v in overrides.items() if v is not None}

    class _Layered(Config):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, InitSettingsSource(settings_cls, file_values))

    try:
        layered = _Layered(**cli_values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "config"
        raise ConfigError(f"invalid setting {where}: {err.get('msg', 'invalid')}") from None
    return Config.model_construct(**layered.model_dump())
