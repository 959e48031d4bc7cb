"""The batch scripts on a real Redis, without workers: who leads, and whose outcome counts."""

from __future__ import annotations

import redis

from hookbird.routing import Handler
from workers.batching import Batches, outcome_field
from workers.store import state_key

HANDLER = Handler("crm:refresh", lambda events, ctx: None, True, False, 3, 2.0)
LOCK = "hookbird:entity-lock:123:Contact:1"


def join(
    batches: Batches, event_id: str, now: float, token: str = "L:1"
) -> tuple[str, tuple[str, ...]]:
    found = batches.join(HANDLER, "123", event_id, token=token, lock_key=LOCK, now=now, ttl=60)
    return found.verdict, found.ids


def test_a_batch_is_led_when_full_or_when_its_window_is_over(redis_client: redis.Redis) -> None:
    """Two of three wait; the third fills it; alone, the window's end makes a leader."""
    batches = Batches(redis_client, scheduled_key="rq:scheduled:q")
    redis_client.set(LOCK, "L:1")
    assert join(batches, "a", 100.0) == ("wait", ())
    assert join(batches, "b", 100.5) == ("wait", ())
    assert join(batches, "c", 101.0) == ("lead", ("a", "b", "c"))
    assert join(batches, "d", 110.0) == ("wait", ())
    assert join(batches, "d", 112.0) == ("lead", ("d",))


def test_only_a_live_leader_records_and_a_gone_leaders_batch_goes_back(
    redis_client: redis.Redis,
) -> None:
    """Claims whose leader lost its entity lock return to the batch; its outcomes are ignored."""
    batches = Batches(redis_client, scheduled_key="rq:scheduled:q")
    redis_client.set(LOCK, "L:1")
    for n, event_id in enumerate("abc"):
        join(batches, event_id, 100.0 + n)
    assert join(batches, "a", 103.0) == ("running", ())
    redis_client.delete(LOCK)  # the leader died; recovery released its entity lock
    redis_client.set(LOCK, "M:2")
    assert join(batches, "a", 104.0, token="M:2") == ("lead", ("a", "b", "c"))
    outcomes = {"a": '{"status": "ok"}', "b": '{"status": "ok"}'}
    assert (
        batches.record(HANDLER, "123", token="L:1", leader="x", outcomes=outcomes, now=105.0) == []
    )
    assert redis_client.hget(state_key("a"), outcome_field(HANDLER.name)) is None
    batches.record(HANDLER, "123", token="M:2", leader="a", outcomes=outcomes, now=105.0)
    assert redis_client.hget(state_key("b"), outcome_field(HANDLER.name)) == b'{"status": "ok"}'
    assert redis_client.get("hookbird:wake:b") == b"1"  # not parked yet: woken once it is
    assert redis_client.get("hookbird:wake:a") is None  # the leader concludes at once
