"""TURN REST API credentials: the username carries its expiry, the credential is the HMAC coturn
recomputes; the URLs a browser accepts; the config that enables them."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from voice_server.config import ConfigError, load_config
from voice_server.identity.turncreds import TurnCredentials, check_url, credential_for

URL = "turns:turn.city.example:443?transport=tcp"


def test_username_is_expiry_colon_sub_and_credential_is_base64_hmac_sha1() -> None:
    creds = TurnCredentials((URL,), "s3cret", 3600)
    server = creds.for_user("alice", now=1_700_000_000.7)
    assert server["urls"] == [URL]
    assert server["username"] == "1700003600:alice"
    expected = hmac.new(b"s3cret", b"1700003600:alice", hashlib.sha1).digest()
    assert server["credential"] == base64.b64encode(expected).decode()
    assert credential_for("s3cret", "1700003600:alice") == server["credential"]


def test_a_sub_cannot_smuggle_a_colon_or_grow_the_username() -> None:
    creds = TurnCredentials((URL,), "s", 60)
    username = str(creds.for_user("a:b c/" + "x" * 200, now=0)["username"])
    expiry, sub = username.split(":")
    assert expiry == "60" and sub.startswith("a_b_c_") and len(sub) == 64


def test_the_secret_never_shows_in_repr() -> None:
    assert "s3cret" not in repr(TurnCredentials((URL,), "s3cret", 60))


@pytest.mark.parametrize(
    "url",
    [
        "turns:turn.city.example:443?transport=tcp",
        "turns:203.0.113.7",
        "turn:turn.city.example:3478?transport=udp",
        "turn:[2001:db8::1]:80",
        "turns:turn.city.example:5349",
    ],
)
def test_turn_urls_a_browser_accepts(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("stun:stun.l.google.com:19302", "not a TURN URL"),
        ("turns:turn.city.example:444", "Chromium allows TURN only"),
        ("turns:turn.city.example:443?transport=udp", "over TCP"),
        ("https://turn.city.example", "not a TURN URL"),
        ("turns:a b:443", "not a TURN URL"),
    ],
)
def test_turn_urls_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_url(url)


def test_config_needs_the_secret_with_urls(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text(f'turn_urls = ["{URL}"]\n')
    with pytest.raises(ConfigError, match="turn_secret"):
        load_config(f)
    f.write_text('turn_urls = ["turns:x:25"]\nturn_secret = "s"\n')
    with pytest.raises(ConfigError, match="Chromium allows TURN only"):
        load_config(f)
    f.write_text(f'turn_urls = ["{URL}"]\nturn_secret = "s3cret"\nturn_ttl_seconds = 900\n')
    cfg = load_config(f)
    assert cfg.turn is not None and cfg.turn.ttl_seconds == 900
    assert "s3cret" not in repr(cfg)  # a SecretStr
    assert load_config().turn is None  # no relay unless configured
