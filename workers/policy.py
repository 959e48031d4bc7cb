"""What becomes of a push that failed, lost its worker or waits its turn, and when it
runs again: every retry and backoff rule of the workers, as pure functions.

::

    RetryLater(after=…)                 retry; ``after`` wins over the backoff
    TransientError (RateLimited, ServerError, Timeout, ConnectionFailed)
                                        retry; ``retry_at`` wins when set
    rq JobTimeoutException              retry (the handler ran out of time)
    PermanentError (4xx, bad data)      dead letter at once, with the reason
    any other exception                 retry like a transient error

Unexpected exceptions are retried (as Sidekiq does) rather than dead-lettered at
once: most are bugs or surprises in data that a fix deployed within the retry window
clears without anyone requeueing anything; a push that keeps failing still reaches
the dead letter after ``HOOKBIRD_MAX_ATTEMPTS``.

Backoff: ``base * 3**(attempt-1)``, ±20 % jitter, at most ``base * 3**6``. With the
defaults (base 60 s, 8 attempts) the seven waits are about 1 m, 3 m, 9 m, 27 m,
81 m, 4 h and 12 h: the last attempt runs about 18 hours after the first.

What becomes of the push after a run (:func:`decide`), first row that applies::

    interrupted by a worker's shutdown  QUEUED at the front, at once; no attempt used
    a handler's verdict is DEAD         DEAD (dead letter), with every reason
    a handler out of attempts           DEAD ("gave up after N attempts")
    a handler's verdict is RETRYING     RETRYING after :func:`retry_delay`
    no failure                          SUCCEEDED

A worker that died under the push (SIGKILL, OOM killer, a forked child killed), each
time counted in its record's ``crashes`` (:func:`after_crash`)::

    crashes < HOOKBIRD_MAX_ATTEMPTS     QUEUED at the front, at once
    crashes >= HOOKBIRD_MAX_ATTEMPTS    DEAD ("its worker died while handling it")

Not its turn (an earlier push for the same entity is unfinished): parked, WAITING. It
is woken the moment that push finishes, and re-checks on its own after
:func:`park_delay`: ``FIRST_PARK`` seconds, doubling with each park up to
``MAX_PARK``, in case the earlier push is lost.
"""

from __future__ import annotations

import math
import random
import traceback
from dataclasses import dataclass

from rq.timeouts import JobTimeoutException

from hookbird.context import RetryLater
from hookbird.moneybird.errors import PermanentError, TransientError
from workers.states import Status

MAX_ERROR_LENGTH = 2000
#: A parked push re-checks its turn on its own after FIRST_PARK s, doubling up to MAX_PARK.
FIRST_PARK, MAX_PARK = 10, 300


@dataclass(frozen=True)
class Verdict:
    """What a handler's failure alone makes of the push: ``kind`` is RETRYING or DEAD;
    ``retry_at`` (epoch) when the error named a time."""

    kind: Status
    reason: str
    retry_at: float | None = None


def describe(exc: BaseException) -> str:
    """One line naming the exception, for outcome records and the dead letter."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


def classify(exc: BaseException, now: float) -> Verdict:
    """Retry or dead letter, following the table in the module docstring."""
    if isinstance(exc, RetryLater):
        return Verdict(Status.RETRYING, describe(exc), exc.retry_at(now))
    if isinstance(exc, TransientError):
        return Verdict(Status.RETRYING, describe(exc), exc.retry_at)
    if isinstance(exc, JobTimeoutException):
        return Verdict(Status.RETRYING, f"timed out: {exc}")
    if isinstance(exc, PermanentError):
        return Verdict(Status.DEAD, describe(exc))
    return Verdict(Status.RETRYING, "unexpected " + describe(exc))


def short_traceback(exc: BaseException, limit: int = 6) -> str:
    """The last frames of the traceback, for ``hookbird events show``."""
    lines = traceback.format_exception(exc, limit=-limit)
    return "".join(lines)[-MAX_ERROR_LENGTH:]


def backoff(attempt: int, base: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    step = min(max(attempt, 1) - 1, 6)
    jitter = (rng or random).uniform(0.8, 1.2)
    return float(base * (3**step) * jitter)


def retry_delay(
    attempt: int,
    base: float,
    verdicts: list[Verdict],
    now: float,
    rng: random.Random | None = None,
) -> int:
    """Whole seconds until the next attempt (RQ schedules in seconds; at least 1).

    A time named by an error (``RateLimited.retry_at``, ``RetryLater(after=…)``)
    wins over the backoff; with several, the latest is kept so all can succeed.
    """
    named = [v.retry_at for v in verdicts if v.retry_at is not None]
    delay = max(named) - now if named else backoff(attempt, base, rng)
    return max(1, math.ceil(delay))


@dataclass(frozen=True)
class Decision:
    """What becomes of a push after one run: its status, why, and when it runs again."""

    status: Status
    reason: str = ""
    delay: int | None = None


def decide(
    failures: list[tuple[str, Verdict]],
    attempts: dict[str, int],
    *,
    interrupted: bool,
    max_attempts: int,
    base: float,
    now: float,
    rng: random.Random | None = None,
) -> Decision:
    """The push's fate from its handlers' failures this run (``attempts``: per handler).

    Interrupted by a shutdown → queued again at once. Any permanent failure, or a
    handler out of attempts → dead letter. Other failures → retry after
    :func:`retry_delay`. None → succeeded.
    """
    if interrupted:
        return Decision(Status.QUEUED, "interrupted by a worker shutdown", 0)
    dead = [(n, v) for n, v in failures if v.kind == Status.DEAD]
    failing = [(n, v) for n, v in failures if v.kind == Status.RETRYING]
    worst = max((attempts.get(n, 0) for n, _ in failing), default=0)
    if failing and worst >= max_attempts:
        dead += [
            (n, Verdict(Status.DEAD, f"gave up after {worst} attempts: {v.reason}"))
            for n, v in failing
        ]
    if dead:
        return Decision(Status.DEAD, "; ".join(f"{n}: {v.reason}" for n, v in dead))
    if failing:
        delay = retry_delay(worst, base, [v for _, v in failing], now, rng)
        return Decision(Status.RETRYING, "; ".join(f"{n}: {v.reason}" for n, v in failing), delay)
    return Decision(Status.SUCCEEDED)


def after_crash(crashes: int, max_attempts: int) -> Status:
    """A push whose worker died under it, the ``crashes``-th time: QUEUED again or DEAD."""
    return Status.DEAD if crashes >= max_attempts else Status.QUEUED


def park_delay(parks: int) -> int:
    """Seconds until a push parked for the ``parks``-th time (1-based) re-checks its turn."""
    return int(min(FIRST_PARK * 2 ** (parks - 1), MAX_PARK))
