"""docker-compose.yml's `cluster` profile and deploy/haproxy.cfg, checked without a Docker engine:
the file is loaded as YAML (its `${VAR:-default}`s given their defaults) and compared with the
server's configuration keys and the proxy's config (README "Cluster", "Running it")."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from voice_server.config import Config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
HAPROXY = ROOT / "deploy" / "haproxy.cfg"
CONFIG_KEYS = {f"VOICE_{name.upper()}" for name in Config.model_fields}


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with no variable set; ``$$`` stays a literal ``$``."""
    text = re.sub(r"\$\{[A-Z0-9_]+:-([^}]*)\}", r"\1", text)
    assert not re.search(r"\$\{", text), "a ${VAR} without a default"
    return text.replace("$$", "$")


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    doc = yaml.safe_load(interpolate(COMPOSE.read_text()))
    out: dict[str, Any] = doc["services"]
    return out


def cluster(services: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in services.items() if "cluster" in v.get("profiles", [])}


def nodes(services: dict[str, Any]) -> dict[str, Any]:
    """The cluster's `serve` services, by name."""
    return {k: v for k, v in cluster(services).items() if v.get("command", [None])[0] == "serve"}


def option(command: list[str], flag: str) -> str:
    assert command.count(flag) == 1, command
    return command[command.index(flag) + 1]


def test_profiles_keep_one_box_as_it_was_and_the_cluster_has_every_part(
    services: dict[str, Any],
) -> None:
    profiles = {p for s in services.values() for p in s.get("profiles", [])}
    assert profiles == {"turn", "cluster"}
    assert {k for k, v in services.items() if "profiles" not in v} == {"server", "transcriber"}
    assert set(cluster(services)) == {
        "postgres", "redis", "keygen", "n1", "n2", "transcriber-n1", "transcriber-n2", "proxy",
    }  # fmt: skip
    got = cluster(services)
    assert got["postgres"]["image"] == "postgres:15"
    assert got["redis"]["image"] == "redis:7"
    assert got["proxy"]["image"].startswith("haproxy:2.6")
    # a cluster service never depends on a one-box one (the documented command names the proxy
    # and the workers; their dependencies come with them)
    for name, svc in got.items():
        assert set(svc.get("depends_on", [])) <= set(got), name


def test_every_node_has_its_own_id_the_shared_stores_and_the_shared_key(
    services: dict[str, Any],
) -> None:
    found = nodes(services)
    assert set(found) == {"n1", "n2"}
    ids = [option(svc["command"], "--node-id") for svc in found.values()]
    assert len(set(ids)) == len(ids) and ids == list(found)  # the service's name is the node id
    data_volumes = []
    for name, svc in found.items():
        env = svc["environment"]
        redis_url = urlsplit(env["VOICE_REDIS_URL"])
        assert redis_url.scheme == "redis" and redis_url.hostname == "redis", name
        db = urlsplit(env["VOICE_DATABASE_URL"])
        assert db.scheme == "postgresql" and db.hostname == "postgres", name
        assert db.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"]
        assert {"postgres", "redis", "keygen"} <= set(svc["depends_on"]), name
        # the deployment key: the one volume keygen writes, copied into the data directory
        assert "voice-key:/key:ro" in svc["volumes"], name
        assert "cp /key/signing.key /data/signing.key" in " ".join(svc["entrypoint"]), name
        data_volumes += [v.split(":")[0] for v in svc["volumes"] if v.split(":")[1] == "/data"]
    assert len(set(data_volumes)) == len(found)  # each node its own spool and clips
    assert any(v.startswith("voice-key:/key") for v in services["keygen"]["volumes"])


def test_transcription_workers_use_the_shared_database_and_a_node(
    services: dict[str, Any],
) -> None:
    workers = {
        k: v for k, v in cluster(services).items() if v.get("command", [None])[0] == "transcriber"
    }
    assert len(workers) == 2
    linked = set()
    for name, svc in workers.items():
        db = urlsplit(svc["environment"]["VOICE_DATABASE_URL"])
        assert db.scheme == "postgresql" and db.hostname == "postgres", name
        server = urlsplit(option(svc["command"], "--server"))
        assert server.hostname in nodes(services) or server.hostname == "proxy", name
        linked.add(server.hostname)
        assert "voice-key:/key:ro" in svc["volumes"], name
    assert linked == set(nodes(services))  # each node's live bursts have a linked worker


def test_the_proxy_config_names_every_node_and_checks_readyz(services: dict[str, Any]) -> None:
    proxy = cluster(services)["proxy"]
    assert "./deploy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in proxy["volumes"]
    assert set(proxy["depends_on"]) == set(nodes(services))
    cfg = HAPROXY.read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+) ", cfg, re.M)
    assert sorted(s[0] for s in servers) == sorted(nodes(services))
    http_port = Config.model_fields["port"].default  # the nodes set no VOICE_PORT
    for name, host, port in servers:
        assert host == name and int(port) == http_port
        assert "VOICE_PORT" not in nodes(services)[name]["environment"]
    for line in ("option httpchk GET /readyz", "http-check expect status 200", "timeout tunnel"):
        assert line in cfg, line
    assert re.search(r"default-server check inter 1s fall 2 rise 1\b", cfg)
    # the proxy's published port is the one its frontend binds and the nodes' public_url names
    binds = re.findall(r"^\s*bind :(\d+)$", cfg, re.M)
    published = {int(p.split(":")[-2]) for p in proxy["ports"]}
    assert {int(b) for b in binds} == published
    for name, svc in nodes(services).items():
        assert urlsplit(svc["environment"]["VOICE_PUBLIC_URL"]).port in published, name


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, pattern
    return int(found.group(1))


def published_ports(svc: dict[str, Any]) -> list[tuple[str, int]]:
    """(protocol, host port) of each published port; host networking: what its command binds."""
    out = []
    for spec in svc.get("ports", []):
        spec, _, proto = str(spec).partition("/")
        parts = spec.split(":")
        out.append((proto or "tcp", int(parts[-2] if len(parts) > 1 else parts[-1])))
    if svc.get("network_mode") == "host":
        args = " ".join(svc.get("command", []))
        out.append(("tcp", number(r"--tls-listening-port=(\d+)", args)))
        low, high = number(r"--min-port=(\d+)", args), number(r"--max-port=(\d+)", args)
        out += [("udp", p) for p in range(low, high + 1)]
    return out


def test_no_two_services_publish_the_same_port_and_each_node_its_media_port(
    services: dict[str, Any],
) -> None:
    counts = Counter(p for svc in services.values() for p in published_ports(svc))
    assert [p for p, n in counts.items() if n > 1] == []
    for name, svc in nodes(services).items():
        media = int(svc["environment"]["VOICE_MEDIA_PORT"])  # in its ICE candidates: same outside
        assert {("udp", media), ("tcp", media)} <= set(published_ports(svc)), name


def test_every_voice_variable_is_a_configuration_key(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for key in svc.get("environment", {}):
            if key.startswith("VOICE_"):
                assert key in CONFIG_KEYS, f"{name}: {key} is no config key"
