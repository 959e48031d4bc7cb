"""Riding out a Redis outage instead of dying of it: the worker side of HOOKBIRD_REDIS_OUTAGE_GRACE.

Redis is restarted (a deploy, a crash, the OOM killer) or failed over by Sentinel, and
for some seconds every command fails with ``ConnectionError``. A worker that lets that
error escape dies halfway through a push, and under a process manager a one-second Redis
blip becomes a restart storm of the whole fleet. So every synchronous client a
long-running process uses gets an :class:`OutageRetry`, redis-py's own retry hook
(``Redis.set_retry``): a command that cannot reach Redis is sent again, with short
jittered waits (at most :data:`MAX_WAIT`), until it gets through or the outage has lasted
``HOOKBIRD_REDIS_OUTAGE_GRACE`` seconds. The first failure of a command is retried at once
and does not count: after a restart every pooled connection fails once, on its first
use. Nothing above redis-py notices a shorter outage:
RQ's dequeue, a handler's own Redis calls, the outcome scripts, retry scheduling,
heartbeats and recovery all just take longer.

One :class:`Outage` per process holds the state every connection of it shares: when the
outage began (one log line), when it ended (one log line, with its duration) and whether
the process gave up. Past the grace every command raises :class:`RedisGone` at once,
without trying: the process is meant to exit (non-zero, with one clear line) and leave
what Redis holds as it is, for its supervisor to restart it and for the other workers'
recovery to run its push again.

A command whose reply was lost when Redis died may have run already; sending it again is
what makes an outage survivable, and hookbird's writes are made to bear it (see
docs/operations.md, "Redis outages").
"""

from __future__ import annotations

import copy
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from hookbird.logs import get_logger
from hookbird.redis_url import FOLLOWS_ON_RETRY

log = get_logger("hookbird.redis")

T = TypeVar("T")

#: Longest wait between two tries (seconds): how late a process notices Redis is back.
MAX_WAIT = 1.0
#: First wait (seconds); each later one doubles, up to MAX_WAIT, with jitter.
FIRST_WAIT = 0.05


class RedisGone(redis.exceptions.ConnectionError):
    """Redis has been unreachable for longer than HOOKBIRD_REDIS_OUTAGE_GRACE."""


class Outage:
    """This process's view of Redis being reachable, shared by all its connections.

    ``clock`` is :func:`time.monotonic` unless a test says otherwise.
    """

    def __init__(
        self, grace: float, where: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.grace = grace
        self.where = where
        self.clock = clock
        self.since: float | None = None
        self.ended_at: float | None = None
        self.gave_up = False
        #: Called once, in the thread that gives up, before its command raises RedisGone.
        self.on_give_up: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def __deepcopy__(self, memo: dict[int, Any]) -> Outage:
        return self  # one per process, whatever redis-py copies

    def _guard(self) -> threading.Lock:
        if self._pid != os.getpid():  # a forked child: the parent's lock may be held
            self._lock, self._pid = threading.Lock(), os.getpid()
        return self._lock

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        """Redis could not be reached: seconds of the grace left (≤ 0: give up)."""
        with self._guard():
            now = self.clock()
            if self.since is None:
                self.since = now
                log.warning(
                    "Redis unreachable",
                    redis=self.where,
                    error=f"{type(error).__name__}: {error}",
                    grace=self.grace,
                    pid=os.getpid(),
                )
            left = self.since + self.grace - now
            first = left <= 0 and not self.gave_up
            if left <= 0:
                self.gave_up = True
        if first and self.on_give_up is not None:
            self.on_give_up()
        return left

    def stop_waiting(self) -> None:
        """The process is stopping: an outage, now or later, is not waited out any more."""
        with self._guard():
            self.grace = 0.0

    def reached(self) -> None:
        """A command got through: if an outage was on, it is over."""
        with self._guard():
            if self.since is None:
                return
            now = self.clock()
            seconds, self.since, self.ended_at = now - self.since, None, now
            log.info(
                "Redis reachable again",
                redis=self.where,
                seconds=round(seconds, 1),
                pid=os.getpid(),
            )

    def unseen_until_now(self) -> None:
        """Count an outage as having ended now: this process may have missed one.

        A process starting (or waiting at start-up for Redis, with another client) cannot
        tell whether Redis just came back; what :meth:`settled` protects against holds for
        its first seconds as much as after an outage it saw.
        """
        with self._guard():
            if self.since is None:
                self.ended_at = self.clock()

    def settled(self, seconds: float) -> bool:
        """True unless an outage ended less than ``seconds`` ago (or is still on)."""
        if self.since is not None:
            return False
        return self.ended_at is None or self.clock() - self.ended_at >= seconds

    def gone(self) -> RedisGone:
        return RedisGone(
            f"Redis at {self.where} unreachable for more than {self.grace:g} s "
            "(HOOKBIRD_REDIS_OUTAGE_GRACE)"
        )


class OutageRetry(Retry):
    """redis-py's retry hook, retrying until the process's :class:`Outage` runs out of grace."""

    def __init__(self, outage: Outage) -> None:
        super().__init__(NoBackoff(), -1)
        self.outage = outage

    def __deepcopy__(self, memo: dict[int, Any]) -> OutageRetry:
        # redis-py copies the retry into every connection; the outage stays shared
        fresh = OutageRetry(self.outage)
        fresh._supported_errors = copy.copy(self._supported_errors)
        fresh._is_retryable = getattr(self, "_is_retryable", None)  # redis-py 6.1+
        return fresh

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OutageRetry) and other.outage is self.outage

    __hash__ = Retry.__hash__

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        outage = self.outage
        if outage.gave_up:
            raise outage.gone()
        failures = 0
        while True:
            try:
                result = do()
            except self._supported_errors as error:
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                checker = getattr(self, "_is_retryable", None)  # redis-py 6.1+
                if (checker is not None and not checker(error)) or (
                    is_retryable is not None and not is_retryable(error)
                ):
                    raise
                if failures == 1:
                    continue  # a pooled connection Redis closed when it restarted: reconnect
                left = outage.failed(error)
                if left <= 0:
                    raise outage.gone() from error
                wait = min(MAX_WAIT, FIRST_WAIT * 2 ** min(failures, 16))
                time.sleep(min(left, random.uniform(wait / 2, wait)))
            else:
                # Only a call that failed and then got through has surely reached Redis:
                # others may have been answered by a socket not yet known to be dead.
                if failures > 1 and outage.since is not None:
                    outage.reached()
                return result


def ride_out(client: redis.Redis, outage: Outage) -> redis.Redis:
    """``client``, its commands retried through outages of up to ``outage.grace`` seconds.

    A client of a ``redis+sentinel://`` URL (:func:`hookbird.redis_url.sync_client`)
    asks the Sentinels for the primary on every reconnect, retries included
    (:class:`hookbird.redis_url.PrimaryFollowingConnection`): it follows a failover and
    waits out a primary killed until the Sentinels promote a replica. On a redis-py
    without the internals that class relies on (``FOLLOWS_ON_RETRY``), a Sentinel client
    is returned as redis-py built it: retried on the same connection, it would keep
    reaching the old primary.
    """
    if isinstance(client.connection_pool, SentinelConnectionPool) and not FOLLOWS_ON_RETRY:
        return client
    client.set_retry(OutageRetry(outage))
    return client


def outage_of(client: redis.Redis) -> Outage | None:
    """The :class:`Outage` ``client`` was given by :func:`ride_out`, if any."""
    retry = client.get_retry()
    return retry.outage if isinstance(retry, OutageRetry) else None
