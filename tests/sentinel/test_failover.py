"""A receiver and workers on a redis+sentinel:// URL keep working across a failover."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird.sentinel_cluster import SentinelCluster
from hookbird.settings import Settings
from receiver.app import create_app
from tests.support import serve_in_thread
from tests.workers.conftest import TOKEN, Workers, calls, push_body, wait_for

pytestmark = pytest.mark.slow


def deliver(http: httpx2.Client, base: str, number: int, tries: int = 100) -> tuple[str, int]:
    """Send one push until it is answered 200, as Moneybird retries a non-200 (here with
    short gaps); its event id and the number of non-200 answers before that."""
    refused = 0
    for _ in range(tries):
        try:
            response = http.post(
                f"{base}/webhooks/moneybird",
                content=push_body(entity_id=str(number)),
                headers={"Idempotency-Key": f"failover-{number}"},
            )
        except httpx2.TransportError:
            refused += 1
        else:
            if response.status_code == 200:
                return str(response.json()["event_id"]), refused
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]
            refused += 1
        time.sleep(0.1)
    raise AssertionError(f"push {number} never answered 200")


def handled(client: redis.Redis) -> set[str]:
    return {call["event_id"] for call in calls(client)}


def test_receiver_and_workers_on_a_sentinel_url_ride_through_a_failover(
    cluster: SentinelCluster, primary: redis.Redis, tmp_path: Path
) -> None:
    """Pushes before and after SENTINEL FAILOVER are all acknowledged (MIN_REPLICAS=1) and
    all handled, by the same receiver and the same two workers (simple and fork), none
    restarted."""
    workers = Workers(cluster.url, tmp_path)
    settings = Settings(redis_url=cluster.url, webhook_token=TOKEN, min_replicas=1)
    try:
        procs = [workers.start("--class", "simple"), workers.start("--class", "fork")]
        with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
            before = {deliver(http, base, 1000 + n)[0] for n in range(10)}
            wait_for(lambda: before <= handled(primary), 60, "the pushes before the failover")
            primary.wait(1, 5000)  # the handlers' records on the replica too
            old = cluster.primary_port()
            assert cluster.failover() != old
            after = {deliver(http, base, 2000 + n)[0] for n in range(10)}
            wait_for(
                lambda: after <= handled(primary), 60, f"pushes after:\n{workers.output()[-3000:]}"
            )
        assert [proc.poll() for proc in procs] == [None, None], workers.output()[-3000:]
        with redis.Redis(port=cluster.primary_port()) as direct:
            assert direct.info("replication")["role"] == "master"
            assert {c["event_id"] for c in calls(direct)} >= before | after
    finally:
        workers.stop_all()
