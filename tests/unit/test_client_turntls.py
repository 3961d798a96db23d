"""The aiortc seam that hands aioice a TLS context trusting --ca-file for turns: relays. Fails
loudly if aiortc changes."""

from __future__ import annotations

import ssl
from pathlib import Path

import aiortc
import aiortc.rtcicetransport
import pytest
from aiortc import RTCIceServer

from tests.tlsca import issue_certificate
from voice_client import turntls


def test_seam_is_pinned_to_the_aiortc_it_was_written_for() -> None:
    assert aiortc.__version__ == turntls.SUPPORTED_AIORTC, (
        "aiortc changed: re-check aiortc.rtcicetransport.connection_kwargs and its call in "
        "RTCIceGatherer, then update voice_client/turntls.py"
    )
    turntls.check_aiortc()


def test_turns_gets_the_context_inside_the_block_and_true_outside(tmp_path: Path) -> None:
    issue_certificate(tmp_path, ["turn.test"])
    context = turntls.client_context(tmp_path / "ca.pem")
    servers = [
        RTCIceServer(urls=["turns:turn.test:443?transport=tcp"], username="u", credential="c")
    ]
    with turntls.turn_tls_context(context):
        kwargs = aiortc.rtcicetransport.connection_kwargs(servers)
        assert kwargs["turn_ssl"] is context and kwargs["turn_transport"] == "tcp"
        plain = [RTCIceServer(urls=["turn:turn.test:3478"], username="u", credential="c")]
        assert aiortc.rtcicetransport.connection_kwargs(plain)["turn_ssl"] is False
    assert aiortc.rtcicetransport.connection_kwargs(servers)["turn_ssl"] is True


def test_a_file_without_a_certificate_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        turntls.client_context(bad)
