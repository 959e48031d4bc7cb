"""A short chaos run: Redis, a worker and a receiver killed with -9 while pushes arrive.

No supervisor: only what the run kills comes back, so a process that quits on its own
(Redis dying under it) stays dead and is reported, instead of being restarted unseen.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Config, run, table

pytestmark = pytest.mark.slow


def test_nothing_answered_200_is_lost_when_every_process_is_killed_once(tmp_path: Path) -> None:
    """300 pushes + 20 % duplicates, one kill -9 of each kind: 0 lost, no credential in a
    log, and no process quits by itself."""
    report = run(
        Config(
            pushes=300,
            rate=60,
            redis_kills=1,
            worker_kills=1,
            receiver_kills=1,
            liveness=2,
            drain_timeout=30,
            logs=tmp_path,
            seed=6,
            supervisor=False,
        )
    )
    print(table(report))
    assert report.exits == [], f"quit on their own, logs in {tmp_path}"
    assert report.lost == [], f"lost pushes, logs in {tmp_path}"
    assert report.gave_up == 0
    assert report.answered_200 == report.sent
    assert report.accepted_twice == 0
    # Each worker killed, or quitting because Redis died under it, may run one handler twice.
    assert report.handled_twice <= report.worker_deaths
    assert report.key_changed == 0
    assert not any(report.leaks.values()), report.leaks
    assert report.drained
