"""Pipeline counters that every worker process shares through Redis, for one ``/metrics``.

Workers run as many processes as an operator likes, on as many machines. Prometheus
scraping each of them would need every process to serve HTTP and be discovered;
prometheus_client's multiprocess mode shares files, so only processes on one machine.
Redis is already what every hookbird process shares, so the counts go there:

- each process counts in memory (:data:`TALLY`: a lock and a dict; nothing per push
  touches the network), and adds its counts to one Redis hash on its liveness beat,
  in the pipeline the beat already sends (``workers.worker``): no extra round trip.
  A fork worker's child adds its counts when its push is done (one round trip).
- the receiver's ``GET /metrics`` reads that hash, and what Redis already knows
  (queue length, dead letter, workers alive, the rate budget), when it is scraped:
  a few reads bounded by the number of handlers, workers and credentials, no SCAN
  (``receiver.pipeline``).

Counts reach Redis up to a beat late (``HOOKBIRD_WORKER_LIVENESS`` / 3), and a process
that dies hard loses the counts of its last beat: good enough for rates and alerts.

Keys:

- ``hookbird:metrics``: hash; field ``["<family>", "<label value>", …]`` (JSON) →
  count (HINCRBY) or sum (HINCRBYFLOAT). Histogram buckets are stored per bucket
  (not cumulative), field ``["handler_seconds_bucket", handler, le]``.
- ``hookbird:metrics:credentials``: sorted set: rate-budget key → last use (epoch
  seconds); keys unused for :data:`CREDENTIAL_TTL` are dropped.
- ``hookbird:metrics:webhooks``: hash: webhook id → JSON ``{"active", "last_http_status",
  "checked_at"}``, written whenever hookbird reads the webhook from Moneybird.
- ``hookbird:metrics:latest``: sorted set: field (as above) → the latest epoch seconds
  something happened (ZADD GT: a late flush never moves it back), e.g. the last
  successful reconciliation per trigger.
"""

from __future__ import annotations

import json
import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from hookbird import keys
from hookbird.logs import get_logger

log = get_logger("hookbird.metrics")

METRICS_KEY = keys.PREFIX + "metrics"
CREDENTIALS_KEY = keys.PREFIX + "metrics:credentials"
WEBHOOKS_KEY = keys.PREFIX + "metrics:webhooks"
LATEST_KEY = keys.PREFIX + "metrics:latest"
#: Seconds after its last use a rate-budget key leaves ``hookbird_moneybird_budget_remaining``.
CREDENTIAL_TTL = 86400

#: What became of one handler's run of one push.
HANDLER_OUTCOMES = ("handled", "retry", "dead_lettered", "skipped")
#: Upper bounds (seconds) of the handler duration histogram; handlers call Moneybird.
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Moneybird answers by status class; ``failed``: no answer (timeout, connection lost).
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx", "failed")
#: What started a reconciliation: the workers' chain, ``hookbird reconcile``, the watchdog.
RECONCILE_TRIGGERS = ("scheduled", "cli", "watchdog")
#: How a reconciliation ended; ``budget_wait``: paused until its share of the budget is free.
RECONCILE_OUTCOMES = ("ok", "failed", "budget_wait")
#: The differences a reconciliation finds between Moneybird and the versions hookbird saw.
RECORD_KINDS = ("new", "changed", "gone")

_BUCKET_LABELS = (*(repr(b) for b in HANDLER_BUCKETS), "+Inf")


def field_name(family: str, *labels: str) -> str:
    """The hash field of one series: JSON, so any label value round-trips."""
    return json.dumps([family, *labels], separators=(",", ":"))


def parse_field(raw: str | bytes) -> tuple[str, ...] | None:
    """The family and label values of a hash field; None for one hookbird did not write."""
    try:
        parts = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts):
        return None
    return tuple(parts)


def status_class(status_code: int | None) -> str:
    """``2xx``…``5xx`` for an HTTP status, ``failed`` for no answer at all."""
    if status_code is None or not 200 <= status_code < 600:
        return "failed"
    return f"{status_code // 100}xx"


@dataclass
class Drained:
    """What a process counted since its last flush (see :meth:`Tally.drain`)."""

    counts: dict[tuple[str, ...], int] = field(default_factory=dict)
    sums: dict[tuple[str, ...], float] = field(default_factory=dict)
    credentials: dict[str, float] = field(default_factory=dict)
    latest: dict[tuple[str, ...], float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts or self.sums or self.credentials or self.latest)


class Tally:
    """One process's counts, until its next flush into Redis. Thread-safe, no I/O."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending = Drained()

    def count(self, *series: str, amount: int = 1) -> None:
        with self._lock:
            counts = self._pending.counts
            counts[series] = counts.get(series, 0) + amount

    def handler_run(self, handler: str, outcome: str) -> None:
        """One handler's run of one push ended in ``outcome`` (:data:`HANDLER_OUTCOMES`)."""
        self.count("handler_runs", handler, outcome)

    def handler_seconds(self, handler: str, seconds: float) -> None:
        le = _BUCKET_LABELS[bisect_left(HANDLER_BUCKETS, seconds)]
        series = ("handler_seconds_sum", handler)
        with self._lock:
            pending = self._pending
            bucket = ("handler_seconds_bucket", handler, le)
            pending.counts[bucket] = pending.counts.get(bucket, 0) + 1
            pending.sums[series] = pending.sums.get(series, 0.0) + seconds

    def retry_scheduled(self) -> None:
        self.count("retries_scheduled")

    def moneybird_answer(self, credential: str, status_code: int | None) -> None:
        """A request to Moneybird drawn from ``credential``'s budget got this answer."""
        with self._lock:
            pending = self._pending
            series = ("moneybird_requests", status_class(status_code))
            pending.counts[series] = pending.counts.get(series, 0) + 1
            if status_code == 429:
                pending.counts[("moneybird_rate_limited",)] = (
                    pending.counts.get(("moneybird_rate_limited",), 0) + 1
                )
            pending.credentials[credential] = time.time()

    def reconcile_run(self, trigger: str, outcome: str) -> None:
        """A reconciliation started by ``trigger`` ended in ``outcome``
        (:data:`RECONCILE_TRIGGERS`, :data:`RECONCILE_OUTCOMES`)."""
        with self._lock:
            pending = self._pending
            series = ("reconcile_runs", trigger, outcome)
            pending.counts[series] = pending.counts.get(series, 0) + 1
            if outcome == "ok":
                pending.latest[("reconcile_last_success", trigger)] = time.time()

    def reconcile_records(self, resource: str, kind: str, amount: int) -> None:
        """A reconciliation of ``resource`` found ``amount`` records of ``kind``
        (:data:`RECORD_KINDS`); 0 is counted too, so the series exists from the first run."""
        self.count("reconcile_records", resource, kind, amount=amount)

    def drain(self) -> Drained:
        """Everything counted so far, handed over; the tally starts again from nothing."""
        with self._lock:
            drained, self._pending = self._pending, Drained()
        return drained

    def restore(self, drained: Drained) -> None:
        """Put back what a failed flush took, so the next flush sends it."""
        with self._lock:
            pending = self._pending
            for series, n in drained.counts.items():
                pending.counts[series] = pending.counts.get(series, 0) + n
            for series, total in drained.sums.items():
                pending.sums[series] = pending.sums.get(series, 0.0) + total
            for credential, at in drained.credentials.items():
                pending.credentials[credential] = max(at, pending.credentials.get(credential, 0))
            for series, at in drained.latest.items():
                pending.latest[series] = max(at, pending.latest.get(series, 0))


def write(pipe: redis.client.Pipeline, drained: Drained) -> None:
    """Queue the commands that add ``drained`` to Redis on ``pipe`` (nothing when empty)."""
    for series, n in drained.counts.items():
        pipe.hincrby(METRICS_KEY, field_name(*series), n)
    for series, total in drained.sums.items():
        pipe.hincrbyfloat(METRICS_KEY, field_name(*series), total)
    if drained.credentials:
        pipe.zadd(CREDENTIALS_KEY, dict(drained.credentials))
        pipe.zremrangebyscore(CREDENTIALS_KEY, "-inf", time.time() - CREDENTIAL_TTL)
    if drained.latest:
        latest = {field_name(*series): at for series, at in drained.latest.items()}
        pipe.zadd(LATEST_KEY, latest, gt=True)


def flush(client: redis.Redis, tally: Tally | None = None) -> None:
    """Add this process's counts to Redis now, in one round trip; kept for later if it fails."""
    tally = tally or TALLY
    drained = tally.drain()
    if not drained:
        return
    try:
        with client.pipeline(transaction=False) as pipe:
            write(pipe, drained)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        tally.restore(drained)
        log.warning("metrics not written", error=f"{type(exc).__name__}: {exc}")


def record_webhooks(client: redis.Redis, hooks: Iterable[Mapping[str, Any]]) -> None:
    """Remember the state of webhooks just read from Moneybird (``id``, ``deactivated_at``,
    ``last_http_status``), for ``hookbird_webhook_*``. Best effort: never fails the caller."""
    now = time.time()
    states: dict[Any, Any] = {
        str(hook["id"]): json.dumps(
            {
                "active": not hook.get("deactivated_at"),
                "last_http_status": hook.get("last_http_status"),
                "checked_at": now,
            }
        )
        for hook in hooks
        if hook.get("id") is not None
    }
    if not states:
        return
    try:
        client.hset(WEBHOOKS_KEY, mapping=states)
    except (redis.RedisError, OSError) as exc:
        log.warning("webhook state not recorded", error=f"{type(exc).__name__}: {exc}")


def forget_webhook(client: redis.Redis, webhook_id: str) -> None:
    """A deleted webhook leaves ``hookbird_webhook_*``."""
    try:
        client.hdel(WEBHOOKS_KEY, webhook_id)
    except (redis.RedisError, OSError) as exc:
        log.warning("webhook state not removed", error=f"{type(exc).__name__}: {exc}")


#: This process's counts.
TALLY = Tally()
