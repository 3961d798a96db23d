"""Which database a process uses: ``database_url`` (pure).

- unset: SQLite in the data directory (``<data-dir>/voice.db``), the embedded default;
- ``sqlite:PATH``: SQLite at PATH (relative to the working directory);
- ``postgresql://user:password@host:port/dbname?…`` (or ``postgres://``): the shared store on
  PostgreSQL (pip extra ``[postgres]``; README "PostgreSQL").

Nothing here imports a database driver; :func:`redact` hides the password wherever a URL is
shown (logs, error lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DatabaseTarget", "check_url", "redact", "target_of"]

_PG_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    kind: Literal["sqlite", "postgresql"]
    path: Path | None = None  # sqlite
    url: str | None = None  # postgresql

    def describe(self) -> str:
        return f"sqlite:{self.path}" if self.kind == "sqlite" else redact(self.url or "")


def check_url(url: str) -> str:
    """``url`` when it names a database this program can use; ValueError (one line) otherwise."""
    url = url.strip()
    if url.startswith("sqlite:"):
        if not url[len("sqlite:") :].strip():
            raise ValueError("sqlite: needs a path (sqlite:/srv/voice/voice.db)")
        return url
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme in _PG_SCHEMES:
        if not re.match(r"^[a-zA-Z]+://", url):
            raise ValueError("a PostgreSQL URL starts with postgresql://")
        return url
    raise ValueError("must start with sqlite: or postgresql://")


def target_of(database_url: str | None, data_dir: Path) -> DatabaseTarget:
    if database_url is None or not database_url.strip():
        return DatabaseTarget("sqlite", path=data_dir / "voice.db")
    url = check_url(database_url)
    if url.startswith("sqlite:"):
        raw = url[len("sqlite:") :]
        if raw.startswith("//"):  # sqlite:///abs/path
            raw = raw[2:]
        return DatabaseTarget("sqlite", path=Path(raw))
    return DatabaseTarget("postgresql", url=url)


def redact(url: str) -> str:
    """``url`` with its password (and a ``password=`` parameter) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable database URL>"
    netloc = parts.netloc
    if "@" in netloc:
        auth, _, host = netloc.rpartition("@")
        if ":" in auth:
            auth = auth.split(":", 1)[0] + ":***"
        netloc = f"{auth}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
