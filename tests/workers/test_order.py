"""Per-entity order across worker processes, and latest_only skipping stale versions."""

from __future__ import annotations

import itertools
import json

import pytest
import redis

from tests.workers.conftest import Pusher, Workers, calls, wait_for
from workers.store import state_key

pytestmark = pytest.mark.slow

LATEST = "tests.workers.sample_handlers:latest_contact"


def succeeded(client: redis.Redis, *event_ids: str) -> bool:
    return all(client.hget(state_key(e), "status") == b"succeeded" for e in event_ids)


def test_pushes_for_one_entity_never_overlap_and_keep_receipt_order(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Two workers, slow handler: one entity's pushes run one at a time in receipt order,
    while another entity's push runs alongside them."""
    redis_client.set("test:sleep:crm", 0.4)
    workers.start()
    workers.start()
    wait_for(lambda: redis_client.scard("hookbird:workers") == 2, message="two workers")
    same = [push(entity_id="777", entity={"id": "777", "version": v}) for v in (1, 2, 3)]
    other = push(entity_id="888", entity={"id": "888", "version": 1})
    wait_for(lambda: succeeded(redis_client, *same, other), timeout=30, message="all four")
    runs = calls(redis_client)
    mine = [c for c in runs if c["entity_id"] == "777"]
    assert [c["event_id"] for c in mine] == same
    for before, after in itertools.pairwise(mine):
        assert before["end"] <= after["start"], "two pushes for one entity overlapped"
    (theirs,) = [c for c in runs if c["entity_id"] == "888"]
    assert any(c["start"] < theirs["end"] and theirs["start"] < c["end"] for c in mine), (
        "different entities should run in parallel"
    )
    assert len({c["pid"] for c in runs}) == 2


def test_latest_only_skips_a_stale_version(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """After version 200 is handled, a push carrying version 100 is skipped and recorded so."""
    workers.start()
    newer = push(action="contact_changed", entity={"id": "456", "version": 200})
    wait_for(lambda: succeeded(redis_client, newer), message="the newer push")
    older = push(action="contact_changed", entity={"id": "456", "version": 100})
    wait_for(lambda: succeeded(redis_client, older), message="the older push")
    latest = [c for c in calls(redis_client) if c["handler"] == "latest"]
    assert [c["version"] for c in latest] == [200]
    outcomes = json.loads(redis_client.hget(state_key(older), "handlers") or b"{}")
    assert outcomes[LATEST]["status"] == "skipped"
    assert "older" in outcomes[LATEST]["reason"]
    crm = [c for c in calls(redis_client) if c["handler"] == "crm"]
    assert len(crm) == 2  # the handler without latest_only still sees both


def test_a_retrying_push_holds_back_later_pushes_for_its_entity(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """The first push fails once and waits for its retry; the second push for the same
    entity does not overtake it, and runs as soon as the first succeeds."""
    redis_client.set("test:fail:crm", 1)
    workers.start()
    workers.start()
    first = push(entity_id="555", entity={"id": "555", "version": 1})
    second = push(entity_id="555", entity={"id": "555", "version": 2})
    wait_for(lambda: succeeded(redis_client, first, second), timeout=8, message="both")
    runs = [c for c in calls(redis_client) if c["handler"] == "crm"]
    assert [c["event_id"] for c in runs] == [first, second]
    assert runs[0]["attempt"] == 2


def test_a_dead_lettered_push_releases_its_entity(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A push that goes to the dead letter no longer holds back the next one for its entity."""
    redis_client.set("test:sleep:crm", 1)
    workers.start()
    workers.start()
    first = push(entity_id="556")
    redis_client.set(f"test:dead-event:{first}", 1)  # checked after the sleep
    second = push(entity_id="556")
    wait_for(lambda: redis_client.llen("test:started"), message="the first push to start")
    redis_client.delete("test:sleep:crm")
    wait_for(
        lambda: redis_client.hget(state_key(first), "status") == b"dead", message="dead letter"
    )
    # woken when the first is dead-lettered, well before its own 10 s re-check
    wait_for(lambda: succeeded(redis_client, second), timeout=8, message="the second push")
    assert [c["event_id"] for c in calls(redis_client)] == [second]


def test_a_burst_for_one_entity_runs_in_order_each_push_woken_by_the_one_before(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Ten pushes for one entity at once over two workers: handled in receipt order, each
    parked push woken when its predecessor finishes (not by its 10 s re-check)."""
    workers.start()
    workers.start()
    wait_for(lambda: redis_client.scard("hookbird:workers") == 2, message="two workers")
    ids = [push(entity_id="42", entity={"id": "42", "version": v}) for v in range(10)]
    wait_for(lambda: succeeded(redis_client, *ids), timeout=8, message="all ten, woken in turn")
    assert [c["event_id"] for c in calls(redis_client)] == ids
