"""One rate budget for every process that talks to Moneybird.

Moneybird allows 150 requests per 5 minutes per credential (50 for ``/reports/``),
counted on its side across all our worker processes. Reacting to 429s is too late
(the job that got one has to be rescheduled, and the others keep hitting the wall),
so each request takes a slot *before* it is sent, from a sliding-window log kept in
Redis and updated by one Lua script: atomic across processes, on Redis's clock.

A request may need several buckets (a report counts against both the general and
the reports budget); it gets a slot only when every bucket has one. A bucket can
also be *held* until a time the server named (a 429's ``Retry-After``, or
``RateLimit-Remaining: 0`` with ``RateLimit-Reset``), so what Moneybird says wins
over what we counted.

A refused caller is told *when* to come back, and callers are told different times:
the ones already waiting are promised the next free slots, so a backlog of jobs
comes back one slot at a time instead of all at once, each (usually) once. Promises
for later windows add ``slack`` per window, so a job that runs a little after its
time (a scheduler's tick) still finds its slot free instead of going to the back.

``margin`` widens the window slightly: a slot freed exactly ``window`` seconds after
an earlier one could otherwise reach Moneybird a few milliseconds early.

Whether Moneybird counts its 150 per token or per IP address is not settled (peers
disagree), so the budget starts per credential and *widens* when Moneybird disagrees
with it: the client reports a 429 that came while the credential's own count still
had room (:meth:`Budget.widen`); from then on, for :data:`WIDENED_FOR`, every process
and credential draws from the one ``global`` bucket (as ``HOOKBIRD_RATE_SCOPE=global``
does from the start). Per IP that is the right budget; per token with a stranger
using it, it is merely cautious. The mark lives in Redis, so the whole fleet widens;
each process rereads it at most every :data:`SCOPE_CHECK_EVERY` seconds.

Keys: ``hookbird:rate:<bucket>:<key>`` (sorted set of slot times),
``…:hold`` (epoch milliseconds) and ``…:waiting`` (sorted set of promised times);
``hookbird:rate:widened`` (until when, epoch milliseconds).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis

PREFIX = "hookbird:rate:"
WIDENED_KEY = PREFIX + "widened"
#: The budget key of the one bucket every credential shares (scope ``global``, widened).
GLOBAL = "global"
#: How long a widened scope lasts: a day, then one more 429 would widen it again.
WIDENED_FOR = 24 * 3600.0
#: Seconds a process trusts its last reading of the widened mark.
SCOPE_CHECK_EVERY = 1.0

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local span = tonumber(ARGV[1])
local member = ARGV[2]
local slack = tonumber(ARGV[3])
local n = #KEYS / 3
local wait_until = 0
for i = 1, n do
  local hold = tonumber(redis.call('GET', KEYS[n + i]) or '0')
  if hold > now and hold > wait_until then wait_until = hold end
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - span)
  redis.call('ZREMRANGEBYSCORE', KEYS[2 * n + i], '-inf', now)
  local limit = tonumber(ARGV[3 + i])
  local count = redis.call('ZCARD', KEYS[i])
  if count >= limit then
    -- Callers already told to come back get the next free slots; this one the one after.
    local waiting = redis.call('ZCARD', KEYS[2 * n + i])
    local index = count - limit + waiting % limit
    local entry = redis.call('ZRANGE', KEYS[i], index, index, 'WITHSCORES')
    -- Later rounds come back slightly late (slack): early, they would find no slot.
    local rounds = math.floor(waiting / limit)
    local free_at = tonumber(entry[2]) + span + rounds * (span + slack)
    if free_at > wait_until then wait_until = free_at end
  end
end
if wait_until > now then
  for i = 1, n do
    redis.call('ZADD', KEYS[2 * n + i], wait_until, member)
    redis.call('PEXPIRE', KEYS[2 * n + i], wait_until - now + 1000)
  end
  return {0, wait_until, now}
end
for i = 1, n do
  redis.call('ZADD', KEYS[i], now, member)
  redis.call('PEXPIRE', KEYS[i], span + 1000)
end
return {1, now, now}
"""

_REMAINING = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local least = nil
for i = 1, #KEYS do
  local used = redis.call('ZCOUNT', KEYS[i], now - tonumber(ARGV[1]), '+inf')
  local left = tonumber(ARGV[1 + i]) - used
  if least == nil or left < least then least = left end
end
return least
"""

_HOLD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local until_ms = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ms > now and until_ms > current then
  redis.call('SET', KEYS[1], until_ms, 'PX', until_ms - now + 1000)
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Bucket:
    """A named limit: at most ``limit`` requests per ``window`` seconds."""

    name: str
    limit: int


@dataclass(frozen=True)
class BudgetConfig:
    limit: int = 150
    reports_limit: int = 50
    window: float = 300.0
    margin: float = 0.25
    slack: float = 1.0

    def buckets(self, path: str) -> tuple[Bucket, ...]:
        """The buckets a request to ``path`` counts against."""
        general = Bucket("api", self.limit)
        if "/reports/" in path:
            return (general, Bucket("reports", self.reports_limit))
        return (general,)


class Budget(Protocol):
    """Where the client takes slots: shared (:class:`RedisBudget`) or per process."""

    config: BudgetConfig

    def acquire(self, key: str, path: str) -> float | None:
        """Take a slot now and return None, or take nothing and return when to retry."""

    def hold(self, key: str, path: str, until: float) -> None:
        """Give out no slot before ``until`` (epoch seconds): the server said so."""

    def remaining(self, key: str, path: str) -> int:
        """Slots left now for a request to ``path`` (holds aside); takes none."""

    def widen(self, until: float) -> bool:
        """Every credential draws from the :data:`GLOBAL` bucket until ``until``; True
        when this call widened it (it was not widened already)."""

    def widened(self) -> bool:
        """Is the scope widened now (possibly by another process)?"""


class RedisBudget:
    """The budget shared by every process using the same Redis."""

    def __init__(self, client: redis.Redis, config: BudgetConfig | None = None) -> None:
        self.redis = client
        self.config = config or BudgetConfig()
        self._acquire = client.register_script(_ACQUIRE)
        self._hold = client.register_script(_HOLD)
        self._remaining = client.register_script(_REMAINING)
        self._widened, self._widened_at = False, -SCOPE_CHECK_EVERY  # read on first use

    def _keys(self, key: str, path: str) -> tuple[list[str], list[int]]:
        buckets = self.config.buckets(path)
        logs = [f"{PREFIX}{b.name}:{key}" for b in buckets]
        keys = [*logs, *(f"{log}:hold" for log in logs), *(f"{log}:waiting" for log in logs)]
        return keys, [b.limit for b in buckets]

    def acquire(self, key: str, path: str) -> float | None:
        keys, limits = self._keys(key, path)
        span_ms = int((self.config.window + self.config.margin) * 1000)
        slack_ms = int(self.config.slack * 1000)
        granted, at_ms, now_ms = self._acquire(
            keys=keys, args=[span_ms, secrets.token_hex(8), slack_ms, *limits]
        )
        if granted:
            return None
        # Redis's clock decides; translate to ours so a skewed host still waits right.
        return time.time() + (int(at_ms) - int(now_ms)) / 1000.0

    def hold(self, key: str, path: str, until: float) -> None:
        keys, _ = self._keys(key, path)
        now_ms = int(time.time() * 1000)
        n = len(keys) // 3
        for hold_key in keys[n : 2 * n]:
            self._hold(keys=[hold_key], args=[now_ms + int((until - time.time()) * 1000)])

    def remaining(self, key: str, path: str) -> int:
        keys, limits = self._keys(key, path)
        span_ms = int((self.config.window + self.config.margin) * 1000)
        return int(self._remaining(keys=keys[: len(limits)], args=[span_ms, *limits]))

    def widen(self, until: float) -> bool:
        left_ms = int((until - time.time()) * 1000)
        if left_ms <= 0:
            return False
        fresh = bool(self.redis.set(WIDENED_KEY, int(until * 1000), px=left_ms, nx=True))
        self._widened_at = time.monotonic()
        self._widened = True
        return fresh

    def widened(self) -> bool:
        now = time.monotonic()
        if now - self._widened_at >= SCOPE_CHECK_EVERY:
            self._widened = bool(self.redis.exists(WIDENED_KEY))
            self._widened_at = now
        return self._widened

    def reset(self, key: str) -> None:
        """Forget every slot and hold of ``key`` (tests and benchmarks)."""
        for name in ("api", "reports"):
            log = f"{PREFIX}{name}:{key}"
            self.redis.delete(log, f"{log}:hold", f"{log}:waiting")


class LocalBudget:
    """The same sliding window in this process only: for a client without Redis.

    ``clock`` (epoch seconds) is this budget's time; tests pass one they move by hand.
    """

    def __init__(
        self, config: BudgetConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or BudgetConfig()
        self._clock = clock
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self._holds: dict[str, float] = {}
        self._widened_until = 0.0

    def acquire(self, key: str, path: str) -> float | None:
        span = self.config.window + self.config.margin
        with self._lock:
            now = self._clock()
            wait_until = 0.0
            names = [f"{b.name}:{key}" for b in self.config.buckets(path)]
            for bucket, name in zip(self.config.buckets(path), names, strict=True):
                log = self._logs.setdefault(name, deque())
                while log and log[0] <= now - span:
                    log.popleft()
                wait_until = max(wait_until, self._holds.get(name, 0.0))
                if len(log) >= bucket.limit:
                    wait_until = max(wait_until, log[len(log) - bucket.limit] + span)
            if wait_until > now:
                return wait_until
            for name in names:
                self._logs[name].append(now)
            return None

    def remaining(self, key: str, path: str) -> int:
        span = self.config.window + self.config.margin
        with self._lock:
            now = self._clock()
            return min(
                b.limit - sum(1 for t in self._logs.get(f"{b.name}:{key}", ()) if t > now - span)
                for b in self.config.buckets(path)
            )

    def hold(self, key: str, path: str, until: float) -> None:
        with self._lock:
            for bucket in self.config.buckets(path):
                name = f"{bucket.name}:{key}"
                self._holds[name] = max(self._holds.get(name, 0.0), until)

    def widen(self, until: float) -> bool:
        with self._lock:
            fresh = self._widened_until <= self._clock()
            self._widened_until = max(self._widened_until, until)
            return fresh

    def widened(self) -> bool:
        return self._widened_until > self._clock()
