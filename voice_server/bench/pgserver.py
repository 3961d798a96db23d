"""A throwaway PostgreSQL for the tests and the benchmarks: Debian's binaries, a temporary data
directory, a private socket directory (no TCP), ``fsync=off``, the ``C.UTF-8`` locale (pg_trgm
needs a UTF-8 ``LC_CTYPE`` for Japanese). initdb and pg_ctl refuse root, so as root they run as
the ``postgres`` user. ``pg_trgm`` is created in ``template1``: every database made afterwards
has it.

Authentication: the superuser ``postgres`` by trust on the socket; any other role by password
(scram), so a wrong password can be tested.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PgServer", "find_bindir", "running_postgres"]

BINDIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def find_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (None: not installed)."""
    env = os.environ.get("VOICE_PG_BINDIR")
    candidates = [Path(env)] if env else BINDIRS
    for d in candidates:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    return None


class PgServer:
    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sock = root / "sock"
        self.port = 5432
        self._names = itertools.count(1)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)

    def url(self, dbname: str = "postgres", user: str = "postgres", password: str = "") -> str:
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@/{dbname}?host={self.sock}&port={self.port}"

    def start(self) -> None:
        self.sock.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.sock, "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=reject", "--no-sync",
        )  # fmt: skip
        hba = self.data / "pg_hba.conf"
        hba.write_text("local all postgres trust\nlocal all all scram-sha-256\n", encoding="utf-8")
        opts = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.sock}' -c port={self.port} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=32MB"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w",
            "-t", "60", "start",
        )  # fmt: skip
        self.sql("template1", "CREATE EXTENSION IF NOT EXISTS pg_trgm")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass

    def sql(self, dbname: str, statement: str) -> None:
        import psycopg  # the [postgres] extra

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            conn.execute(statement.encode())

    def new_database(self, prefix: str = "t", *, template: str = "template1") -> str:
        """A new empty database (with pg_trgm); its URL."""
        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.sql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)


@contextmanager
def running_postgres(bindir: Path | None = None) -> Iterator[PgServer]:
    found = bindir or find_bindir()
    if found is None:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin)")
    root = Path(tempfile.mkdtemp(prefix="voice-pg-"))
    server = PgServer(found, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
