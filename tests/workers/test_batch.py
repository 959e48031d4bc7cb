"""Batch handlers in real worker processes: one call for many pushes, outcomes per push."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest
import redis
from rq.registry import FailedJobRegistry

from tests.workers.conftest import Pusher, Workers, run_cli, wait_for
from workers.store import state_key

pytestmark = pytest.mark.slow

HANDLERS = "tests.workers.batch_handlers"
FULL = "tests.workers.batch_handlers:full"
QUICK = "tests.workers.batch_handlers:quick"
NEWEST = "tests.workers.batch_handlers:newest"


def batches(client: redis.Redis, key: str = "test:batches") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def status(client: redis.Redis, event_id: str) -> str:
    found = client.hget(state_key(event_id), "status")
    return found.decode() if isinstance(found, bytes) else ""


def record(client: redis.Redis, event_id: str, handler: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(client.hget(state_key(event_id), "handlers") or b"{}")
    return dict(found.get(handler, {}))


def all_in(client: redis.Redis, ids: list[str], wanted: str) -> bool:
    return all(status(client, i) == wanted for i in ids)


def test_three_pushes_reach_a_batch_handler_in_one_call(
    push: Pusher, workers: Workers, redis_client: redis.Redis, redis_url: str
) -> None:
    """A batch of three runs once for three contacts; each push records its own outcome."""
    ids = [push(entity_id=str(n)) for n in (1, 2, 3)]
    workers.start(HOOKBIRD_HANDLERS=HANDLERS)
    wait_for(lambda: all_in(redis_client, ids, "succeeded"), timeout=30, message="the batch")
    (call,) = batches(redis_client)
    assert sorted(call["ids"]) == sorted(ids)
    assert sorted(redis_client.lrange("test:each", 0, -1)) == sorted(i.encode() for i in ids)
    for event_id in ids:
        assert record(redis_client, event_id, FULL)["status"] == "ok"
        assert record(redis_client, event_id, FULL)["attempts"] == 1
    shown = run_cli(redis_url, "events", "show", ids[0])
    assert f"handler {FULL}: ok, attempts 1" in shown.stdout
    assert "batch: ran in one call with 3 events" in shown.stdout


def test_a_failure_in_a_batch_retries_or_dead_letters_that_push_alone(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """The handler fails one push transiently and one for good: only those two pay for it."""
    ok, flaky, gone = (push(action="contact_changed", entity_id=str(n)) for n in (1, 2, 3))
    redis_client.set(f"test:fail-event:{flaky}", 1)
    redis_client.set(f"test:dead-event:{gone}", 1)
    workers.start(HOOKBIRD_HANDLERS=HANDLERS)
    wait_for(lambda: all_in(redis_client, [ok, flaky], "succeeded"), timeout=40, message="all")
    wait_for(lambda: status(redis_client, gone) == "dead", message="the dead letter")
    assert record(redis_client, ok, QUICK)["attempts"] == 1
    assert record(redis_client, flaky, QUICK)["attempts"] == 2
    assert record(redis_client, gone, QUICK)["status"] == "dead"
    assert gone in FailedJobRegistry("hookbird", connection=redis_client).get_job_ids()
    handled = [i for call in batches(redis_client) for i in call["ids"]]
    assert sorted(handled) == sorted([ok, flaky, flaky, gone])
    assert len(redis_client.lrange("test:each", 0, -1)) == 3  # the other handler: once each


def test_pushes_for_one_entity_never_share_a_batch_and_keep_their_order(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Two pushes for contact 7 run in two batches, the older first; contact 8 is not held up."""
    first = push(action="contact_changed", entity_id="7", entity={"id": "7", "version": 1})
    second = push(action="contact_changed", entity_id="7", entity={"id": "7", "version": 2})
    other = push(action="contact_changed", entity_id="8", entity={"id": "8", "version": 1})
    workers.start(HOOKBIRD_HANDLERS=HANDLERS)
    ids = [first, second, other]
    wait_for(lambda: all_in(redis_client, ids, "succeeded"), timeout=40, message="all")
    calls = batches(redis_client)
    for call in calls:
        assert len(set(call["entities"])) == len(call["entities"])
    index = {i: n for n, call in enumerate(calls) for i in call["ids"]}
    assert index[first] < index[second]
    assert index[other] == index[first]


def test_a_latest_only_batch_skips_a_push_with_a_newer_one_waiting_behind_it(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Versions 1, 2, 3 of contact 7: 1 was alone when it joined, 2 is skipped for 3."""
    pushes = [
        push(action="contact_archived", entity_id="7", entity={"id": "7", "version": v})
        for v in (1, 2, 3)
    ]
    other = push(action="contact_archived", entity_id="8", entity={"id": "8", "version": 1})
    workers.start(HOOKBIRD_HANDLERS=HANDLERS)
    wait_for(lambda: all_in(redis_client, [*pushes, other], "succeeded"), timeout=40, message="all")
    calls = batches(redis_client)
    handed = {i: v for call in calls for i, v in zip(call["ids"], call["versions"], strict=True)}
    assert handed == {pushes[0]: 1, pushes[2]: 3, other: 1}
    skipped = record(redis_client, pushes[1], NEWEST)
    assert skipped["status"] == "skipped"
    assert "version 3 of the entity is waiting behind it" in skipped["reason"]


def test_kill_9_of_a_batch_leader_loses_no_push_and_runs_none_twice(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """kill -9 of the worker mid-batch: another worker runs the batch; each push once."""
    redis_client.set("test:sleep:batch", 30)
    doomed = workers.start(HOOKBIRD_HANDLERS=HANDLERS)
    ids = [push(entity_id=str(n)) for n in (1, 2, 3)]
    wait_for(lambda: batches(redis_client, "test:batch-started"), timeout=30, message="a batch")
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait(5)
    redis_client.delete("test:sleep:batch")
    workers.start(HOOKBIRD_HANDLERS=HANDLERS)
    wait_for(lambda: all_in(redis_client, ids, "succeeded"), timeout=60, message="the rerun")
    (call,) = batches(redis_client)
    assert sorted(call["ids"]) == sorted(ids)
    assert call["pid"] != doomed.pid
    assert len(batches(redis_client, "test:batch-started")) == 2
    for event_id in ids:
        assert record(redis_client, event_id, FULL)["status"] == "ok"
