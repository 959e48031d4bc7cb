"""doctor's judgements on replication and Sentinel, from what INFO and Sentinels said."""

from __future__ import annotations

from typing import Any

from hookbird.doctor import ERROR, OK, WARN, SentinelView, judge_replication, judge_sentinels


def primary_info(online: int) -> dict[str, Any]:
    info: dict[str, Any] = {"role": "master", "connected_slaves": online}
    for n in range(online):
        info[f"slave{n}"] = {"ip": "10.0.0.2", "port": 6379, "state": "online", "lag": 0}
    return info


def statuses(checks: Any) -> list[tuple[str, str]]:
    return [(c.status, c.what) for c in checks]


def test_a_replica_behind_redis_url_is_an_error() -> None:
    """REDIS_URL leading to a replica: every push would be refused (READONLY)."""
    (check,) = judge_replication({"role": "slave"}, 0, None, sentinel=False)
    assert check.status == ERROR
    assert "not the primary" in check.what


def test_fewer_replicas_than_min_replicas_is_an_error() -> None:
    """MIN_REPLICAS=2 with one replica online: every push would get 503."""
    checks = list(judge_replication(primary_info(1), 2, 1, sentinel=True))
    assert checks[0].status == OK
    assert checks[1].status == ERROR
    assert "every push is answered 503" in checks[1].what


def test_replicas_without_min_replicas_get_advice() -> None:
    """Replicas but MIN_REPLICAS=0 and min-replicas-to-write 0: two warnings, each saying
    what to set."""
    checks = list(judge_replication(primary_info(1), 0, 0, sentinel=True))
    assert [c.status for c in checks] == [OK, WARN, WARN]
    assert "HOOKBIRD_MIN_REPLICAS=1" in checks[1].advice
    assert "min-replicas-to-write 1" in checks[2].advice


def test_a_lone_redis_without_sentinel_is_fine() -> None:
    """No replicas, no Sentinel, nothing asked for: nothing to warn about."""
    checks = list(judge_replication(primary_info(0), 0, 0, sentinel=False))
    assert [c.status for c in checks] == [OK]


def test_min_replicas_to_write_above_the_replicas_is_an_error() -> None:
    """Redis itself would refuse every write."""
    checks = list(judge_replication(primary_info(0), 0, 1, sentinel=False))
    assert checks[-1].status == ERROR
    assert "refuses every write" in checks[-1].what


def test_min_replicas_met_is_ok() -> None:
    checks = list(judge_replication(primary_info(1), 1, 1, sentinel=True))
    assert [c.status for c in checks] == [OK, OK, OK]


def test_sentinels_agreeing_on_the_reached_primary_is_ok() -> None:
    views = [SentinelView(f"s{n}:26379", primary="10.0.0.1:6379") for n in range(3)]
    (check,) = judge_sentinels("hookbird", views, "10.0.0.1:6379")
    assert check.status == OK
    assert "3 Sentinels of 3 name 10.0.0.1:6379" in check.what


def test_sentinels_disagreeing_is_an_error_naming_each() -> None:
    views = [
        SentinelView("s0:26379", primary="10.0.0.1:6379"),
        SentinelView("s1:26379", primary="10.0.0.2:6379"),
        SentinelView("s2:26379", primary="10.0.0.1:6379"),
    ]
    checks = list(judge_sentinels("hookbird", views, "10.0.0.1:6379"))
    assert [c.status for c in checks] == [ERROR]
    assert "s1:26379 says 10.0.0.2:6379" in checks[0].what


def test_a_majority_of_sentinels_down_is_an_error() -> None:
    """One unreachable: a warning; two of three: no failover can be agreed, an error."""
    views = [
        SentinelView("s0:26379", error="Connection refused"),
        SentinelView("s1:26379", error="Connection refused"),
        SentinelView("s2:26379", primary="10.0.0.1:6379"),
    ]
    found = statuses(judge_sentinels("hookbird", views, "10.0.0.1:6379"))
    assert [s for s, _ in found] == [WARN, WARN, ERROR, OK]
    assert "too few to agree" in found[2][1]


def test_a_sentinel_without_the_service_names_the_service() -> None:
    views = [SentinelView("s0:26379"), SentinelView("s1:26379", primary="10.0.0.1:6379")]
    checks = list(judge_sentinels("typo", views, "10.0.0.1:6379"))
    assert checks[0].status == ERROR
    assert "'typo'" in checks[0].what
