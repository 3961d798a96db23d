"""The tests' server processes survive a port taken between drawing it and binding it (another
process's ephemeral socket): the server is started again on fresh ports."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.servers import ServerProcess
from voice_server.bench.ports import free_port

pytestmark = pytest.mark.integration


def test_a_media_port_taken_meanwhile_is_replaced(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        server = ServerProcess(tmp_path, free_port(), port)
        try:
            server.start()
            assert server.media_port != port and server.ready()
        finally:
            server.stop()
    logs = [p.read_text() for p in tmp_path.glob("server-*.log")]
    assert any("Address already in use" in text for text in logs)  # the first try, refused
