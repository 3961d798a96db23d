"""The test PostgreSQL: UTF-8 ctype (Japanese trigrams), pg_trgm in every new database, password
authentication for roles other than the superuser."""

from __future__ import annotations

import pytest

from voice_server.bench.pgserver import PgServer


def test_a_fresh_database_has_a_utf8_ctype_and_japanese_trigrams(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        ctype = conn.execute("SELECT datctype FROM pg_database WHERE datname = current_database()")
        assert ctype.fetchone() == ("C.UTF-8",)
        trigrams = conn.execute("SELECT show_trgm('会議室')").fetchone()
        assert trigrams is not None and len(trigrams[0]) > 0


def test_other_roles_need_their_password(pg_server: PgServer) -> None:
    import psycopg

    pg_server.sql("postgres", "CREATE ROLE pw_user LOGIN PASSWORD 'right'")
    with psycopg.connect(pg_server.url("postgres", "pw_user", "right")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("pw_user",)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(pg_server.url("postgres", "pw_user", "wrong"))
