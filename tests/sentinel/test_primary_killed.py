"""The primary killed with kill -9 while the Sentinels elect another: nothing restarts.

An outage, not a ``SENTINEL FAILOVER``: every command fails until the Sentinels have
called the primary down and promoted the replica (seconds), longer than redis-py's own
reconnects last. The workers ride it out through HOOKBIRD_REDIS_OUTAGE_GRACE and must
then reach the new primary, not keep knocking at the dead one's address.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird.redis_url import sync_client
from hookbird.sentinel_cluster import SentinelCluster
from hookbird.settings import Settings
from receiver.app import create_app
from tests.sentinel.test_failover import deliver
from tests.support import serve_in_thread
from tests.workers.conftest import TOKEN, Workers, calls, wait_for
from tests.workers.test_outage import children_of, lines

pytestmark = pytest.mark.slow


def reachable(read: redis.Redis, what: str) -> list[str]:
    """The event ids in list ``what``, or none while Redis is unreachable."""
    try:
        return [json.loads(raw)["event_id"] for raw in read.lrange(what, 0, -1)]
    except redis.ConnectionError:
        return []


def outage_lines(workers: Workers, event: str) -> list[int]:
    """The pids of the worker processes' log lines ``event``."""
    return [r["pid"] for r in lines(workers.output()) if r.get("event") == event]


def outage_lines_paired(workers: Workers) -> bool:
    began = outage_lines(workers, "Redis unreachable")
    return bool(began) and Counter(began) == Counter(outage_lines(workers, "Redis reachable again"))


@pytest.fixture
def restored(cluster: SentinelCluster) -> Iterator[SentinelCluster]:
    """The cluster, its killed primary started again after the test to rejoin as a replica."""
    yield cluster
    for server in cluster.servers:
        if server.process is not None and server.process.poll() is not None:
            server.start()
    cluster.wait_following(cluster.wait_agreed())
    cluster.wait_agreed()


@pytest.mark.parametrize("busy", ["simple", "fork"])
def test_workers_ride_out_the_primary_killed_until_the_sentinels_promote_the_replica(
    restored: SentinelCluster, primary: redis.Redis, tmp_path: Path, busy: str
) -> None:
    """kill -9 of the primary with a push in a handler of one worker (``busy``) and the
    other waiting on the queue: the receiver answers 503 and then 200; the push in flight
    and the one sent during the outage are each handled once, by the same workers and
    scheduler; one line per process when the outage starts and one when it ends.

    The idle worker's dequeue is the command in flight when the primary dies: each try
    again must ask the Sentinels, not reconnect to the dead primary's address.
    """
    cluster = restored
    primary.set("test:sleep:crm", "3")
    workers = Workers(cluster.url, tmp_path)
    settings = Settings(redis_url=cluster.url, webhook_token=TOKEN)
    watch = sync_client(cluster.url, socket_timeout=2, socket_connect_timeout=2)
    idle = "fork" if busy == "simple" else "simple"
    grace = "60"
    try:
        procs = [workers.start("--class", busy, HOOKBIRD_REDIS_OUTAGE_GRACE=grace)]
        # RQ runs one scheduler per queue, in a child of the worker that took its lock
        schedulers = wait_for(lambda: children_of(procs[0].pid), 30, "the scheduler")
        with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
            in_flight, _ = deliver(http, base, 3000)
            wait_for(
                lambda: reachable(watch, "test:started") == [in_flight],
                30,
                f"the {busy} worker to start the handler",
            )
            procs.append(workers.start("--class", idle, HOOKBIRD_REDIS_OUTAGE_GRACE=grace))
            wait_for(
                lambda: len(watch.smembers("rq:workers")) == 2, 30, f"the {idle} worker to listen"
            )
            primary.wait(1, 5000)  # the replica has the push and its started state
            old = cluster.primary
            old.kill()
            during, refused = deliver(http, base, 3100)
            assert refused, "the receiver answered 200 with its primary killed"
            # A Sentinel that was not in the vote learns of the new primary from the
            # others' hellos (every 250 ms here): the receiver skips its stale answer,
            # but primary_port() asks the first Sentinel that answers.
            wait_for(
                lambda: cluster.primary_port() != old.port,
                15,
                "every Sentinel to name the new primary",
            )
            everything = {in_flight, during}
            wait_for(
                lambda: set(reachable(watch, "test:calls")) >= everything,
                30,
                f"every push handled:\n{workers.output()[-3000:]}",
            )
        handled = Counter(call["event_id"] for call in calls(watch))
        assert handled == Counter(everything), handled
        assert Counter(reachable(watch, "test:started")) == Counter(everything)
        assert [proc.poll() for proc in procs] == [None, None], workers.output()[-3000:]
        kids = [kid for proc in procs for kid in children_of(proc.pid)]
        assert set(schedulers) <= set(kids), (schedulers, kids)
        # a process says the outage ended at its next command, up to a second later
        wait_for(
            lambda: outage_lines_paired(workers),
            15,
            f"each outage's end to be logged:\n{workers.output()[-3000:]}",
        )
        began = outage_lines(workers, "Redis unreachable")
        assert len(set(began)) == len(began), workers.output()[-3000:]
        output = workers.output()
        assert "Traceback" not in output, output[output.find("Traceback") - 1500 :]
    finally:
        watch.close()
        workers.stop_all()
