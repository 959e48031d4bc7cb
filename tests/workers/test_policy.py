"""The retry policy where several handlers fail at once, and its limits, exactly."""

from __future__ import annotations

import random

from hookbird import RetryLater
from hookbird.moneybird.errors import RateLimited, ServerError
from workers.policy import (
    MAX_ERROR_LENGTH,
    backoff,
    classify,
    decide,
    describe,
    retry_delay,
    short_traceback,
)

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
