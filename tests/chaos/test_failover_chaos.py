"""A short chaos run in Sentinel mode: the primary killed with -9 while pushes arrive.

No supervisor: the killed primary is started again to rejoin as a replica, and nothing
else is; every receiver and worker must ride out the election on its own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Config, run, table

pytestmark = pytest.mark.slow


def test_nothing_answered_200_is_lost_across_a_sentinel_failover(tmp_path: Path) -> None:
    """300 pushes + 20 % duplicates on redis+sentinel:// with MIN_REPLICAS=1, the primary
    killed once: every push answered 200 in the end, 0 lost, nothing accepted twice, no
    process quits by itself."""
    report = run(
        Config(
            pushes=300,
            rate=60,
            redis_kills=0,
            worker_kills=0,
            receiver_kills=0,
            failovers=1,
            liveness=2,
            drain_timeout=60,
            logs=tmp_path,
            seed=18,
            supervisor=False,
        )
    )
    print(table(report))
    assert report.exits == [], f"quit on their own, logs in {tmp_path}"
    assert report.failovers == 1
    assert report.lost == [], f"lost pushes, logs in {tmp_path}"
    assert report.gave_up == 0
    assert report.answered_200 == report.sent
    assert report.accepted_twice == 0
    assert report.handled_twice <= report.worker_deaths
    assert not any(report.leaks.values()), report.leaks
    assert report.drained
