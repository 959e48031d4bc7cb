"""``hookbird doctor`` on a redis+sentinel:// URL looks at the real topology."""

from __future__ import annotations

import redis

from hookbird.commands.doctor import run_checks
from hookbird.doctor import ERROR, OK, WARN
from hookbird.sentinel_cluster import SentinelCluster
from hookbird.settings import Settings


def found(settings: Settings) -> list[tuple[str, str, str]]:
    return [(c.status, c.what, c.advice) for c in run_checks(settings)]


def test_doctor_sees_the_primary_its_replica_and_three_agreeing_sentinels(
    cluster: SentinelCluster, primary: redis.Redis
) -> None:
    """Role, one replica against MIN_REPLICAS=1, all Sentinels naming the primary reached,
    and advice on min-replicas-to-write (the test cluster leaves it at 0)."""
    checks = found(Settings(redis_url=cluster.url, min_replicas=1))
    whats = [what for _, what, _ in checks]
    assert (OK, "Redis is the primary, 1 replica online", "") in checks
    assert any(s == OK and "acknowledged once 1 replica" in w for s, w, _ in checks), whats
    assert any(s == WARN and w.startswith("min-replicas-to-write 0") for s, w, _ in checks)
    port = cluster.primary_port()
    assert any(s == OK and f"3 Sentinels of 3 name 127.0.0.1:{port}" in w for s, w, _ in checks), (
        whats
    )


def test_doctor_names_a_sentinel_that_is_down_and_a_missing_replica(
    cluster: SentinelCluster, primary: redis.Redis
) -> None:
    """One Sentinel stopped: a warning naming it; MIN_REPLICAS=2 with one replica: an error."""
    stopped = cluster.sentinels[2]
    stopped.stop()
    try:
        checks = found(Settings(redis_url=cluster.url, min_replicas=2))
    finally:
        stopped.start("")  # its config file already holds what it knows
    whats = [what for _, what, _ in checks]
    assert any(
        s == WARN and w.startswith(f"Sentinel 127.0.0.1:{stopped.port} unreachable")
        for s, w, _ in checks
    ), whats
    assert any(s == ERROR and "HOOKBIRD_MIN_REPLICAS=2" in w for s, w, _ in checks), whats
