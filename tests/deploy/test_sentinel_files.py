"""The Sentinel variant of the deploy files: compose.sentinel.yaml and redis-sentinel.conf."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from hookbird.redis_server import find_redis_server, free_port
from hookbird.redis_url import parse_sentinel_url, url_problem
from tests.deploy.test_linters import compose_schema

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def override() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.sentinel.yaml").read_text())
    return loaded


def test_compose_sentinel_matches_the_compose_spec() -> None:
    """deploy/compose.sentinel.yaml validates against the Compose specification's schema."""
    result = compose_schema(DEPLOY / "compose.sentinel.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_sentinel_points_hookbird_at_three_sentinels_with_min_replicas() -> None:
    """web and worker get a redis+sentinel:// URL naming all three Sentinels and the
    service they monitor, and MIN_REPLICAS=1; a primary and two replicas run."""
    services = override()["services"]
    assert {"redis", "redis-replica-1", "redis-replica-2"} <= set(services)
    sentinels = [name for name in services if name.startswith("sentinel-")]
    assert len(sentinels) == 3
    monitor = re.search(
        r"sentinel monitor (\S+) redis 6379 2", services["sentinel-1"]["command"][2]
    )
    assert monitor is not None
    for name in ("web", "worker"):
        env = services[name]["environment"]
        url = re.sub(r"\$\{REDIS_PASSWORD[^}]*\}", "pw", env["REDIS_URL"])
        assert url_problem(url) is None
        parsed = parse_sentinel_url(url)
        assert parsed.sentinels == tuple((s, 26379) for s in sentinels)
        assert parsed.service == monitor.group(1)
        assert env["HOOKBIRD_MIN_REPLICAS"] == "1"
    replica = services["redis-replica-1"]["environment"]
    assert replica["REPLICAOF"] == "redis"


def test_redis_sentinel_conf_is_accepted_by_redis_and_refuses_writes_without_replicas(
    tmp_path: Path,
) -> None:
    """A real redis-server takes redis-sentinel.conf (with redis.conf included): and a
    primary without a replica then refuses writes, as min-replicas-to-write says."""
    text = (DEPLOY / "redis-sentinel.conf").read_text()
    conf = tmp_path / "redis-sentinel.conf"
    conf.write_text(text.replace("/usr/local/etc/redis/redis.conf", str(DEPLOY / "redis.conf")))
    port = free_port()
    log = tmp_path / "redis.log"
    args = ["--dir", str(tmp_path), "--bind", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [find_redis_server(), str(conf), *args], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        client = redis.Redis(port=port, socket_timeout=2)
        for _ in range(250):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.02)
        assert client.config_get("min-replicas-to-write") == {"min-replicas-to-write": "1"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}  # from redis.conf
        with pytest.raises(redis.exceptions.ResponseError, match=r"^NOREPLICAS"):
            client.set("push", "1")
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)
