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
from workers.policy import (
    MAX_ERROR_LENGTH,
    after_crash,
    backoff,
    classify,
    decide,
    describe,
    park_delay,
    retry_delay,
    short_traceback,
)
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


NOW = 1_790_000_000.0


def test_the_latest_of_several_named_retry_times_wins() -> None:
    """Two handlers told to come back at different times: the push waits for the later one,
    in whichever order they failed."""
    sooner = classify(RateLimited("429", retry_at=NOW + 100), NOW)
    later = classify(RetryLater(after=400), NOW)
    assert retry_delay(1, 60, [sooner, later], NOW) == 400
    assert retry_delay(1, 60, [later, sooner], NOW) == 400
    out = decide(
        [("crm:sync", sooner), ("billing:paid", later)],
        {"crm:sync": 1, "billing:paid": 1},
        interrupted=False,
        max_attempts=8,
        base=60,
        now=NOW,
    )
    assert (out.status, out.delay) == ("retrying", 400)


def test_the_handler_with_the_most_attempts_decides_giving_up() -> None:
    """Two handlers failing: one out of attempts dead-letters the push even though the
    other has attempts left, and the reason names both."""
    failing = [("crm:sync", classify(ServerError("503"), NOW))]
    failing.append(("billing:paid", classify(ServerError("502"), NOW)))
    out = decide(
        failing,
        {"crm:sync": 2, "billing:paid": 8},
        interrupted=False,
        max_attempts=8,
        base=60,
        now=NOW,
    )
    assert out.status == "dead"
    assert out.reason.count("gave up after 8 attempts") == 2
    assert out.delay is None


def test_the_backoff_follows_the_handler_with_the_most_attempts() -> None:
    """Two handlers on attempts 1 and 3: the push waits as long as the third attempt's
    backoff (540 s ± 20 %), not the first's."""
    failing = [
        ("crm:sync", classify(ServerError("503"), NOW)),
        ("billing:paid", classify(ServerError("502"), NOW)),
    ]
    out = decide(
        failing,
        {"crm:sync": 1, "billing:paid": 3},
        interrupted=False,
        max_attempts=8,
        base=60,
        now=NOW,
        rng=random.Random(3),
    )
    assert out.status == "retrying"
    assert out.delay is not None
    assert 0.8 * 540 <= out.delay <= 1.2 * 540 + 1


def test_one_attempt_left_still_retries() -> None:
    """The attempt before the last retries; only reaching max_attempts gives up."""
    failing = [("crm:sync", classify(ServerError("503"), NOW))]

    def status(attempts: int) -> str:
        return decide(
            failing, {"crm:sync": attempts}, interrupted=False, max_attempts=8, base=60, now=NOW
        ).status

    assert status(7) == "retrying"
    assert status(8) == "dead"


def test_backoff_is_at_least_the_base_and_jitter_stays_within_a_fifth() -> None:
    """Attempt 0 or 1 waits about ``base``; over many draws the jitter spans ±20 % and
    never more."""
    rng = random.Random(11)
    draws = [backoff(1, 100, rng) for _ in range(2000)]
    assert 80 <= min(draws) < 81
    assert 119 < max(draws) <= 120
    assert 80 <= backoff(0, 100, rng) <= 120
    assert 80 * 3**6 <= backoff(100, 100, rng) <= 120 * 3**6


def test_describe_cuts_at_the_limit() -> None:
    """A long error message is cut to exactly MAX_ERROR_LENGTH characters (2000)."""
    assert MAX_ERROR_LENGTH == 2000
    text = describe(ValueError("x" * 5000))
    assert len(text) == 2000
    assert text.startswith("ValueError: xxx")
    assert describe(ValueError()) == "ValueError"


def test_short_traceback_keeps_the_last_six_frames() -> None:
    """``events show`` gets the six innermost frames, the error line last."""

    def eight() -> None:
        raise KeyError("deep")

    def seven() -> None:
        eight()

    def six() -> None:
        seven()

    def five() -> None:
        six()

    def four() -> None:
        five()

    def three() -> None:
        four()

    def two() -> None:
        three()

    try:
        two()
    except KeyError as exc:
        text = short_traceback(exc)
    assert text.count("  File ") == 6
    assert "in three" in text
    assert "in two" not in text
    assert text.rstrip().endswith("KeyError: 'deep'")
    assert "raise KeyError" in text
