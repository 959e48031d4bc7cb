"""A push a worker took off the queue but died before starting is queued again, not lost."""

from __future__ import annotations

import pytest
import redis
from rq import Queue
from rq.job import Job

from workers import recovery
from workers.store import state_key

QUEUE = "hookbird"


def strand(client: redis.Redis, job_id: str, *, execution: bool) -> Queue:
    """What a worker killed between RQ's BLMOVE and marking the job started leaves behind."""
    queue = Queue(QUEUE, connection=client)
    queue.enqueue("workers.jobs.process_event", job_id=job_id)
    client.lmove(queue.key, queue.intermediate_queue_key)
    if execution:
        client.zadd(queue.started_job_registry.key, {f"{job_id}:exec1": 9999999999})
    return queue


@pytest.mark.parametrize("execution", [False, True])
def test_a_stranded_push_is_queued_again_on_a_later_pass(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, execution: bool
) -> None:
    """Seen stranded on one pass and still there past STRANDED_AFTER: back at the queue's front."""
    queue = strand(redis_client, "ev-stranded", execution=execution)
    queue.enqueue("workers.jobs.process_event", job_id="ev-next")
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == []  # first sighting
    monkeypatch.setattr(recovery, "STRANDED_AFTER", 0.0)
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == ["ev-stranded"]
    assert queue.get_job_ids() == ["ev-stranded", "ev-next"]
    assert redis_client.llen(queue.intermediate_queue_key) == 0
    assert redis_client.zcard(queue.started_job_registry.key) == 0
    assert Job.fetch("ev-stranded", connection=redis_client).get_status() == "queued"
    assert redis_client.hget(state_key("ev-stranded"), "crashes") is None


def test_a_push_just_taken_off_the_queue_is_left_to_its_worker(redis_client: redis.Redis) -> None:
    """Within STRANDED_AFTER of the first sighting the push stays where its worker put it."""
    queue = strand(redis_client, "ev-taken", execution=False)
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == []
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == []
    assert redis_client.lrange(queue.intermediate_queue_key, 0, -1) == [b"ev-taken"]
    assert queue.get_job_ids() == []


def test_a_started_push_in_the_intermediate_list_is_not_touched(
    redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only pushes still "queued" count as stranded; started ones are the started registry's."""
    queue = strand(redis_client, "ev-started", execution=False)
    redis_client.hset("rq:job:ev-started", "status", "started")
    monkeypatch.setattr(recovery, "STRANDED_AFTER", 0.0)
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == []
    assert recovery.reap(redis_client, QUEUE, max_attempts=8) == []
    assert redis_client.lrange(queue.intermediate_queue_key, 0, -1) == [b"ev-started"]
