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
