"""A worker that quits with a push still started leaves it to be run again."""

from __future__ import annotations

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from workers import recovery
from workers.worker import HookbirdSimpleWorker

QUEUE = "hookbird"


def test_a_push_left_started_by_a_quitting_worker_is_run_again(redis_client: redis.Redis) -> None:
    """After teardown (e.g. the worker quit on a Redis error mid-push) the reaper requeues it."""
    queue = Queue(QUEUE, connection=redis_client)
    job = queue.enqueue("workers.jobs.process_event", job_id="ev-left")
    redis_client.lrem(queue.key, 1, "ev-left")
    worker = HookbirdSimpleWorker([queue], connection=redis_client)
    worker.bootstrap()
    job.set_status(JobStatus.STARTED)
    redis_client.hset(job.key, "worker_name", worker.name)
    redis_client.zadd(queue.started_job_registry.key, {"ev-left:exec1": 9999999999})
    worker.teardown()
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == ["ev-left"]
    assert queue.get_job_ids() == ["ev-left"]
    assert Job.fetch("ev-left", connection=redis_client).get_status() == "queued"
    assert not redis_client.sismember(recovery.WORKERS, worker.name)  # forgotten by the reap


def test_a_worker_whose_liveness_lapses_during_a_reap_is_not_forgotten_before_its_push(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its liveness key expiring mid-pass leaves it listed, so the next pass reruns its push."""
    queue = Queue(QUEUE, connection=redis_client)
    job = queue.enqueue("workers.jobs.process_event", job_id="ev-lapsed")
    redis_client.lrem(queue.key, 1, "ev-lapsed")
    job.set_status(JobStatus.STARTED)
    redis_client.hset(job.key, "worker_name", "w-lapsing")
    redis_client.zadd(queue.started_job_registry.key, {"ev-lapsed:exec1": 9999999999})
    redis_client.sadd(recovery.WORKERS, "w-lapsing")
    redis_client.set(recovery.alive_key("w-lapsing"), 1)
    requeue_stranded = recovery._requeue_stranded

    def lapse_then_requeue(connection: redis.Redis, queue_name: str) -> list[str]:
        connection.delete(recovery.alive_key("w-lapsing"))  # expires right after the check
        return requeue_stranded(connection, queue_name)

    monkeypatch.setattr(recovery, "_requeue_stranded", lapse_then_requeue)
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == []
    assert redis_client.sismember(recovery.WORKERS, "w-lapsing")
    monkeypatch.setattr(recovery, "_requeue_stranded", requeue_stranded)
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == ["ev-lapsed"]
    assert queue.get_job_ids() == ["ev-lapsed"]
    assert not redis_client.sismember(recovery.WORKERS, "w-lapsing")


def test_a_rescue_cut_off_by_redis_leaves_the_push_for_the_next_pass(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis failing mid-rescue: the push is still in the started registry, not in neither."""
    queue = Queue(QUEUE, connection=redis_client)
    job = queue.enqueue("workers.jobs.process_event", job_id="ev-cut")
    redis_client.lrem(queue.key, 1, "ev-cut")
    job.set_status(JobStatus.STARTED)
    redis_client.hset(job.key, "worker_name", "w-dead")
    redis_client.zadd(queue.started_job_registry.key, {"ev-cut:exec1": 9999999999})
    redis_client.sadd(recovery.WORKERS, "w-dead")

    def redis_dies(*args: object, **kwargs: object) -> None:
        raise redis.exceptions.ConnectionError("Redis went away")

    monkeypatch.setattr(Queue, "enqueue_job", redis_dies)
    with pytest.raises(redis.exceptions.ConnectionError):
        recovery.reap(redis_client, QUEUE, max_attempts=8)
    assert redis_client.zrange(queue.started_job_registry.key, 0, -1) == [b"ev-cut:exec1"]
    assert redis_client.sismember(recovery.WORKERS, "w-dead")
    monkeypatch.undo()
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == ["ev-cut"]
    assert queue.get_job_ids() == ["ev-cut"]
