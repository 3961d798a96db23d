from pathlib import Path

import pytest

from voice_server.config import ConfigError, load_config


def test_defaults_apply_without_file_env_or_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICE_PORT", raising=False)
    cfg = load_config()
    assert cfg.port == 8000 and cfg.media_port == 40000 and cfg.slots == 3
    assert cfg.grace_seconds == 10.0


def test_layers_are_defaults_then_file_then_env_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "c.toml"
    f.write_text("port = 9001\nmedia_port = 41000\n[server]\nslots = 4\ngrace_seconds = 3\n")
    monkeypatch.setenv("VOICE_MEDIA_PORT", "42000")
    monkeypatch.setenv("VOICE_GRACE_SECONDS", "5")
    cfg = load_config(f, grace_seconds=7, host=None)
    assert cfg.port == 9001  # file over default
    assert cfg.slots == 4  # [server] table
    assert cfg.media_port == 42000  # env over file
    assert cfg.grace_seconds == 7  # flag over env
    assert cfg.host == "127.0.0.1"  # a None flag is "not given"


def test_unknown_key_in_the_file_is_one_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config(f)


def test_invalid_values_are_reported_with_their_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICE_PORT", "99999")
    with pytest.raises(ConfigError, match="port"):
        load_config()


def test_missing_or_broken_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_metrics_allow_must_be_networks() -> None:
    with pytest.raises(ConfigError, match="metrics_allow"):
        load_config(metrics_allow=["not-a-net"])
