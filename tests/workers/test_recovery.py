"""Workers that die or are stopped mid-handler: the push runs again, it is never lost."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import redis
from rq.job import Job
from rq.registry import FailedJobRegistry

from tests.workers.conftest import Pusher, Workers, calls, wait_for
from workers.store import state_key

pytestmark = pytest.mark.slow


def started(client: redis.Redis) -> list[dict[str, object]]:
    return [json.loads(raw) for raw in client.lrange("test:started", 0, -1)]


def succeeded(client: redis.Redis, event_id: str) -> bool:
    return client.hget(state_key(event_id), "status") == b"succeeded"


def test_sigkill_mid_handler_runs_the_push_again(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """kill -9 of a worker inside a handler: another worker runs the push, not the dead letter."""
    redis_client.set("test:sleep:crm", 30)
    doomed = workers.start()
    event_id = push()
    wait_for(lambda: started(redis_client), message="the handler to start")
    assert Job.fetch(event_id, connection=redis_client).get_status() == "started"
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(5)
    redis_client.delete("test:sleep:crm")
    workers.start()
    wait_for(lambda: succeeded(redis_client, event_id), timeout=20, message="the rerun")
    (call,) = calls(redis_client)
    assert call["pid"] != doomed.pid
    assert len(started(redis_client)) == 2
    assert event_id not in FailedJobRegistry("hookbird", connection=redis_client).get_job_ids()
    assert redis_client.hget(state_key(event_id), "crashes") == b"1"


def test_a_rerun_that_finds_its_push_expired_leaves_no_record_without_ttl(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """The crash counter creates the outcome record; when the stored push expired before the
    rerun, that record still expires (every hookbird key has a TTL or a cap)."""
    redis_client.set("test:sleep:crm", 30)
    doomed = workers.start()
    event_id = push()
    wait_for(lambda: started(redis_client), message="the handler to start")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(5)
    redis_client.delete(f"hookbird:event:{event_id}")  # retention ran out meanwhile
    workers.start()
    job = Job.fetch(event_id, connection=redis_client)
    wait_for(lambda: job.get_status(refresh=True) == "finished", timeout=20, message="the rerun")
    assert job.return_value() == {"event_id": event_id, "status": "expired"}
    assert redis_client.hget(state_key(event_id), "crashes") == b"1"
    assert redis_client.ttl(state_key(event_id)) > 0
    assert calls(redis_client) == []


def test_a_push_that_keeps_killing_workers_is_dead_lettered(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """With HOOKBIRD_MAX_ATTEMPTS=1, one worker death mid-push sends it to the dead letter."""
    redis_client.set("test:sleep:crm", 30)
    doomed = workers.start(HOOKBIRD_MAX_ATTEMPTS="1")
    event_id = push()
    wait_for(lambda: started(redis_client), message="the handler to start")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(5)
    workers.start(HOOKBIRD_MAX_ATTEMPTS="1")
    failed = FailedJobRegistry("hookbird", connection=redis_client)
    wait_for(lambda: event_id in failed.get_job_ids(), timeout=20, message="the dead letter")
    assert b"worker died while handling it, 1 of 1" in (
        redis_client.hget(state_key(event_id), "error") or b""
    )
    assert calls(redis_client) == []


def test_sigkill_of_a_forked_child_runs_the_push_again(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Fork mode: the child running the handler is killed; the same worker runs the push again."""
    redis_client.set("test:sleep:crm", 30)
    workers.start("--class", "fork")
    event_id = push()
    (first,) = wait_for(lambda: started(redis_client), message="the handler to start")
    redis_client.delete("test:sleep:crm")
    os.kill(int(str(first["pid"])), signal.SIGKILL)
    wait_for(lambda: succeeded(redis_client, event_id), timeout=20, message="the rerun")
    assert len(started(redis_client)) == 2
    assert redis_client.hget(state_key(event_id), "crashes") == b"1"


def test_sigterm_lets_a_short_push_finish(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """SIGTERM while a handler runs within the grace period: it finishes, then the worker stops."""
    redis_client.set("test:sleep:crm", 1)
    proc = workers.start(HOOKBIRD_SHUTDOWN_GRACE="10")
    event_id = push()
    wait_for(lambda: started(redis_client), message="the handler to start")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert succeeded(redis_client, event_id)
    assert len(calls(redis_client)) == 1


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_sigterm_past_the_grace_period_puts_the_push_back(
    push: Pusher, workers: Workers, redis_client: redis.Redis, worker_class: str
) -> None:
    """A handler still running when the grace period ends is cut off and queued again, at once."""
    redis_client.set("test:sleep:crm", 30)
    proc = workers.start("--class", worker_class, HOOKBIRD_SHUTDOWN_GRACE="1")
    event_id = push()
    wait_for(lambda: started(redis_client), message="the handler to start")
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0
    assert time.monotonic() - began < 10
    job = Job.fetch(event_id, connection=redis_client)
    assert job.get_status() == "queued"
    assert redis_client.lrange("rq:queue:hookbird", 0, -1) == [event_id.encode()]
    redis_client.delete("test:sleep:crm")
    workers.start()
    wait_for(lambda: succeeded(redis_client, event_id), message="the rerun")
    (call,) = calls(redis_client)
    assert call["attempt"] == 1  # being cut off by a shutdown does not use up an attempt
