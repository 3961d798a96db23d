"""The organisation the announcement tests share: supervisor ``boss`` of channel ``a`` (not
``b``), staff ``ma`` a member of ``a``."""

from __future__ import annotations

from tests.servers import ServerProcess


def boss_of_a(server: ServerProcess) -> dict[str, str]:
    """Create the accounts; the headers of boss's API token (naming both channels)."""
    server.cli("users", "add", "boss", "--role", "supervisor", "--no-password")
    server.cli("users", "add", "ma", "--role", "staff", "--no-password", "--channel", "a")
    server.cli("channels", "assign", "a", "--supervisor", "boss")
    token = server.token("boss", "a", "b", role="supervisor", aud="api")
    return {"Authorization": f"Bearer {token}"}
