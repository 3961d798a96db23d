"""``serve --workers N`` and the config key ``workers``: bounds, ``auto``, the port range."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from voice_server.bench.ports import free_port
from voice_server.cli import main
from voice_server.config import ConfigError, load_config, resolve_workers
from voice_server.workers.ports import check_media_ports, media_ports


@pytest.mark.parametrize("value", ["0", "65", "-1", "two", "1.5"])
def test_workers_outside_1_to_64_is_one_line_and_a_non_zero_exit(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["serve", "--workers", value, "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "workers" in err and "1..64" in err


def test_workers_defaults_to_one_and_reads_the_config_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_config().workers == 1
    toml = tmp_path / "v.toml"
    toml.write_text('workers = "auto"\nworkers_placement = "round-robin"\n')
    config = load_config(toml)
    assert config.workers == "auto" and config.workers_placement == "round-robin"
    assert 1 <= config.worker_count <= 64
    monkeypatch.setenv("VOICE_WORKERS", "3")
    assert load_config().worker_count == 3
    with pytest.raises(ConfigError):
        load_config(workers_placement="random")


def test_auto_is_the_usable_cores_capped_at_64() -> None:
    assert resolve_workers("auto", cores=8) == 8
    assert resolve_workers("auto", cores=200) == 64
    assert resolve_workers(5, cores=200) == 5


def test_worker_i_takes_media_port_plus_i() -> None:
    assert media_ports(40000, 3) == [40000, 40001, 40002]
    assert media_ports(0, 2) == [0, 0]
    with pytest.raises(ValueError):
        media_ports(65535, 2)


def test_a_port_of_the_range_in_use_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        base = busy - 1
        code = main(
            [
                "serve",
                "--workers",
                "2",
                "--media-port",
                str(base),
                "--media-tcp-port",
                "0",
                "--port",
                str(free_port()),
                "--data-dir",
                str(tmp_path),
            ]
        )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert f"media UDP port {busy}" in err and "worker 1 of 2" in err and "in use" in err


def test_ice_tcp_ports_of_the_range_are_checked_too() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        udp = free_port(socket.SOCK_DGRAM)
        with pytest.raises(OSError, match=f"media TCP port {busy} .*worker 0 of 1"):
            check_media_ports("127.0.0.1", udp, 1, busy)
        check_media_ports("127.0.0.1", udp, 1, 0)  # no ICE-TCP: only UDP is checked
