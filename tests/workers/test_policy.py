"""Parsing stored pushes into Events, and the retry policy: pure functions."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from rq.timeouts import JobTimeoutException

from hookbird import RetryLater
from hookbird.context import idempotency_key
from hookbird.events import UnreadableEvent, event_from_stored
from hookbird.moneybird.errors import NotFound, RateLimited, ServerError
from workers.policy import after_crash, backoff, classify, decide, park_delay, retry_delay
from workers.states import Status


def stored(**body: object) -> dict[bytes, bytes]:
    data = {
        "administration_id": 123,
        "webhook_id": "9",
        "action": "contact_changed",
        "entity_type": "Contact",
        "entity_id": 456,
        "state": "active",
        "entity": {"id": "456", "version": "1790000001"},
    }
    data.update(body)
    return {
        b"body": json.dumps(data).encode(),
        b"received_at": b"1790000000.5",
        b"idempotency_key": b"idem",
        b"action": b"",
    }


def test_event_from_stored_keeps_ids_as_strings_and_reads_the_version() -> None:
    """Integer IDs become str, the entity's version becomes an int, receipt time a float."""
    event = event_from_stored("e1", stored())
    assert event.administration_id == "123"
    assert event.entity_id == "456"
    assert event.version == 1790000001
    assert event.received_at == 1790000000.5
    assert event.entity_key == ("123", "Contact", "456")
    assert event.summary() == "contact_changed Contact 456 adm 123"


def test_unreadable_bodies_raise() -> None:
    """A body that is not a JSON object, or lacks the action, raises UnreadableEvent."""
    with pytest.raises(UnreadableEvent):
        event_from_stored("e1", {b"body": b"not json"})
    with pytest.raises(UnreadableEvent):
        event_from_stored("e1", {b"body": b'{"administration_id": "1"}'})


def test_classify_follows_the_error_tree() -> None:
    """Transient errors, timeouts, RetryLater and surprises retry; permanent ones go dead."""
    assert classify(ServerError("503"), 0).kind == Status.RETRYING
    assert classify(RateLimited("429", retry_at=500.0), 0).retry_at == 500.0
    assert classify(RetryLater(after=30), 100).retry_at == 130
    assert classify(JobTimeoutException("slow"), 0).kind == Status.RETRYING
    assert classify(KeyError("x"), 0).kind == Status.RETRYING
    assert classify(NotFound("gone"), 0).kind == Status.DEAD


def test_backoff_grows_three_fold_with_bounded_jitter() -> None:
    """Waits grow 3x per attempt within ±20 %, and stop growing after the seventh."""
    rng = random.Random(7)
    for attempt, nominal in [(1, 60), (2, 180), (3, 540), (7, 43740), (12, 43740)]:
        assert 0.8 * nominal <= backoff(attempt, 60, rng) <= 1.2 * nominal


def test_a_named_retry_time_wins_over_the_backoff() -> None:
    """RateLimited.retry_at sets the delay; with several, the latest one."""
    verdicts = [classify(RateLimited("a", retry_at=1300.0), 1000), classify(ServerError("b"), 1000)]
    assert retry_delay(1, 60, verdicts, 1000) == 300
    assert retry_delay(1, 60, [classify(RateLimited("a", retry_at=999.0), 1000)], 1000) == 1


def test_idempotency_key_is_stable_per_event_and_handler() -> None:
    """The same (event, handler) gives the same key; another handler or event does not."""
    key = idempotency_key("e1", "crm:sync")
    assert key == idempotency_key("e1", "crm:sync")
    assert key != idempotency_key("e1", "crm:other")
    assert key != idempotency_key("e2", "crm:sync")


def test_decide_retries_transient_failures_and_dead_letters_permanent_ones() -> None:
    """No failure → succeeded; transient → retrying with a delay; permanent → dead."""
    transient = ("crm:sync", classify(ServerError("503"), 0))
    permanent = ("billing:paid", classify(NotFound("gone"), 0))
    common: dict[str, Any] = {"max_attempts": 8, "base": 60, "now": 0.0, "interrupted": False}
    assert decide([], {}, **common).status == "succeeded"
    retrying = decide([transient], {"crm:sync": 1}, **common)
    assert retrying.status == "retrying"
    assert retrying.delay is not None
    assert 48 <= retrying.delay <= 72
    dead = decide([transient, permanent], {"crm:sync": 1}, **common)
    assert dead.status == "dead"
    assert dead.reason.startswith("billing:paid: NotFound")


def test_decide_gives_up_after_max_attempts_and_requeues_interrupted_runs() -> None:
    """The eighth failed attempt dead-letters; a shutdown interruption requeues at once."""
    transient = ("crm:sync", classify(ServerError("503"), 0))
    out = decide([transient], {"crm:sync": 8}, interrupted=False, max_attempts=8, base=60, now=0.0)
    assert out.status == "dead"
    assert "gave up after 8 attempts" in out.reason
    stopped = decide([], {}, interrupted=True, max_attempts=8, base=60, now=0.0)
    assert (stopped.status, stopped.delay) == ("queued", 0)


def test_a_push_whose_worker_died_runs_again_until_the_crash_that_reaches_max_attempts() -> None:
    """Crashes one to seven of eight queue the push again; the eighth dead-letters it."""
    assert [after_crash(n, 8) for n in range(1, 10)] == [Status.QUEUED] * 7 + [Status.DEAD] * 2


def test_a_parked_push_rechecks_after_ten_seconds_doubling_up_to_five_minutes() -> None:
    """Park 1 → 10 s, 2 → 20 s, 3 → 40 s … never more than 300 s."""
    assert [park_delay(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 300, 300, 300]
