"""A real coturn for tests (voice_server/bench/turnrelay.py) with a certificate from a
throw-away CA (tests/tlsca.py) naming its address: ``--ca-file`` clients verify it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.tlsca import issue_certificate
from voice_server.bench.turnrelay import SECRET, Turn, missing, nft
from voice_server.bench.turnrelay import running_turn as _running_turn

__all__ = ["SECRET", "Turn", "missing", "nft", "running_turn"]


@contextlib.contextmanager
def running_turn(
    folder: Path, *, address: str = "127.0.0.1", port: int | None = None
) -> Iterator[Turn]:
    """coturn on ``address:port``; its CA is ``folder/ca.pem`` (``Turn.ca``)."""
    folder.mkdir(parents=True, exist_ok=True)
    chain, key = issue_certificate(folder, ["turn.voice.test"], ips=[address])
    with _running_turn(folder, chain, key, folder / "ca.pem", address=address, port=port) as turn:
        yield turn
