"""The pipeline's metrics on the receiver's ``/metrics``, read from Redis when scraped.

Why here: every hookbird process shares Redis, so one scrape of any receiver shows
the whole pipeline, however many workers run where (see :mod:`hookbird.metrics` for
how the workers' counts get there). Every receiver shows the same pipeline figures;
dashboards and rules take ``max without (instance)`` of them.

A scrape costs two pipelined round trips, their size bounded by the number of
handlers, workers and rate-budget credentials, never by the number of pushes: no
SCAN, no KEYS. The push path does none of this. When Redis does not answer in time
the scrape still succeeds, with ``hookbird_pipeline_metrics_up 0`` and nothing else
from Redis.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio
import redis.exceptions
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from rq.queue import Queue
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from hookbird import keys, metrics
from hookbird.settings import Settings

#: ``workers.recovery``'s liveness keys (the receiver never imports workers).
WORKERS_KEY = keys.PREFIX + "workers"
ALIVE_PREFIX = keys.PREFIX + "alive:"
#: ``hookbird.moneybird.budget``'s sliding-window logs (the receiver never imports it).
RATE_PREFIX = keys.PREFIX + "rate:api:"
#: ``workers.watchdog``'s counts of what its checks found, per kind of problem.
WATCHDOG_COUNTS_KEY = keys.PREFIX + "watchdog:counts"
WATCHDOG_PROBLEMS = ("missing", "deactivated", "failing")
#: RQ's keys for hookbird's queue, named as the installed RQ names them.
RQ_KEYS = {
    "queue": Queue.redis_queue_namespace_prefix + "{0}",
    "failed": FailedJobRegistry.key_template,
    "scheduled": ScheduledJobRegistry.key_template,
    "started": StartedJobRegistry.key_template,
}
RQ_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@dataclass
class Snapshot:
    """What one scrape read from Redis."""

    now: float
    queue_depth: int = 0
    oldest_enqueued_at: float | None = None
    dead_letter: int = 0
    scheduled: int = 0
    running: int = 0
    workers_alive: int = 0
    #: ``hookbird:metrics`` as written by :func:`hookbird.metrics.write`
    counters: dict[str, str] = field(default_factory=dict)
    #: credential → slots left in the general budget now (0 while Moneybird holds it)
    budget: dict[str, int] = field(default_factory=dict)
    #: webhook id → {"active", "last_http_status", "checked_at"}
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``hookbird:metrics:latest``: field → epoch seconds
    latest: dict[str, float] = field(default_factory=dict)
    #: problem → checks of the webhook watchdog that found it
    watchdog: dict[str, str] = field(default_factory=dict)
    #: this process's ``HOOKBIRD_RECONCILE_INTERVAL`` (0: off)
    reconcile_interval: int = 0


def rq_time(raw: Any) -> float | None:
    """An RQ job timestamp (``2026-12-06T10:41:02.123456Z``) as epoch seconds."""
    if not raw:
        return None
    try:
        return datetime.strptime(_text(raw), RQ_TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


async def read(client: redis.asyncio.Redis, settings: Settings) -> Snapshot:
    """Everything the pipeline metrics need, in two pipelined round trips."""
    rq = {name: template.format(settings.queue) for name, template in RQ_KEYS.items()}
    async with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.llen(rq["queue"])
        pipe.lindex(rq["queue"], 0)
        pipe.zcard(rq["failed"])
        pipe.zcard(rq["scheduled"])
        pipe.zcard(rq["started"])
        pipe.smembers(WORKERS_KEY)
        pipe.hgetall(metrics.METRICS_KEY)
        pipe.zrange(metrics.CREDENTIALS_KEY, 0, -1)
        pipe.hgetall(metrics.WEBHOOKS_KEY)
        pipe.zrange(metrics.LATEST_KEY, 0, -1, withscores=True)
        pipe.hgetall(WATCHDOG_COUNTS_KEY)
        first = await pipe.execute()
    (seconds, micros), depth, head, failed, scheduled, started = first[:6]
    workers, counters, credentials, webhooks, latest, watchdog = first[6:]
    now = int(seconds) + int(micros) / 1e6
    workers = sorted(_text(w) for w in workers)
    credentials = [_text(c) for c in credentials]
    span_ms = int((settings.rate_window + settings.rate_margin) * 1000)
    now_ms = int(now * 1000)
    async with client.pipeline(transaction=False) as pipe:
        if head:
            pipe.hget(keys.rq_job_key(_text(head)), "enqueued_at")
        for worker in workers:
            pipe.exists(ALIVE_PREFIX + worker)
        for credential in credentials:
            pipe.zcount(RATE_PREFIX + credential, now_ms - span_ms, "+inf")
            pipe.get(RATE_PREFIX + credential + ":hold")
        second = await pipe.execute()
    enqueued_at = rq_time(second.pop(0)) if head else None
    alive, slots = second[: len(workers)], second[len(workers) :]
    budget = {}
    for i, credential in enumerate(credentials):
        used, hold = int(slots[2 * i]), int(slots[2 * i + 1] or 0)
        budget[credential] = 0 if hold > now_ms else max(0, settings.rate_limit - used)
    return Snapshot(
        now=now,
        queue_depth=int(depth),
        oldest_enqueued_at=enqueued_at,
        dead_letter=int(failed),
        scheduled=int(scheduled),
        running=int(started),
        workers_alive=sum(1 for a in alive if a),
        counters={_text(k): _text(v) for k, v in counters.items()},
        budget=budget,
        webhooks=_webhooks(webhooks),
        latest={_text(k): float(v) for k, v in latest},
        watchdog={_text(k): _text(v) for k, v in watchdog.items()},
        reconcile_interval=settings.reconcile_interval,
    )


def _webhooks(raw: Mapping[Any, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for webhook_id, value in raw.items():
        try:
            state = json.loads(value)
        except ValueError:
            continue
        if isinstance(state, dict):
            found[_text(webhook_id)] = state
    return found


def families(snap: Snapshot) -> Iterator[Metric]:
    """The Prometheus families of one snapshot (documented in docs/operations.md)."""
    yield GaugeMetricFamily(
        "hookbird_pipeline_metrics_up", "1 when Redis answered this scrape's reads.", value=1
    )
    yield GaugeMetricFamily(
        "hookbird_queue_depth", "Pushes waiting in the queue for a worker.", value=snap.queue_depth
    )
    age = 0.0 if snap.oldest_enqueued_at is None else max(0.0, snap.now - snap.oldest_enqueued_at)
    yield GaugeMetricFamily(
        "hookbird_queue_oldest_age_seconds",
        "How long the push at the head of the queue has waited (0: queue empty).",
        value=age,
    )
    yield GaugeMetricFamily(
        "hookbird_dead_letter_pushes", "Pushes in the dead letter.", value=snap.dead_letter
    )
    yield GaugeMetricFamily(
        "hookbird_scheduled_pushes",
        "Pushes waiting for a retry or for an earlier push of their entity.",
        value=snap.scheduled,
    )
    yield GaugeMetricFamily(
        "hookbird_running_pushes", "Pushes a worker is running now.", value=snap.running
    )
    yield GaugeMetricFamily(
        "hookbird_workers_alive",
        "Worker processes whose liveness beat is current.",
        value=snap.workers_alive,
    )
    yield from _counters(snap.counters)
    budget = GaugeMetricFamily(
        "hookbird_moneybird_budget_remaining",
        "Requests the rate budget of a credential allows now (0 while Moneybird holds it).",
        labels=["credential"],
    )
    for credential, left in sorted(snap.budget.items()):
        budget.add_metric([credential], left)
    yield budget
    active = GaugeMetricFamily(
        "hookbird_webhook_active",
        "1 when Moneybird had the webhook active when hookbird last read it, 0 deactivated.",
        labels=["webhook_id"],
    )
    status = GaugeMetricFamily(
        "hookbird_webhook_last_http_status",
        "The HTTP status Moneybird last got from us for the webhook (0: none yet).",
        labels=["webhook_id"],
    )
    checked = GaugeMetricFamily(
        "hookbird_webhook_checked_timestamp_seconds",
        "When hookbird last read the webhook's state from Moneybird.",
        labels=["webhook_id"],
    )
    for webhook_id, state in sorted(snap.webhooks.items()):
        active.add_metric([webhook_id], 1 if state.get("active") else 0)
        status.add_metric([webhook_id], _number(state.get("last_http_status")))
        checked.add_metric([webhook_id], _number(state.get("checked_at")))
    yield from (active, status, checked)
    yield from _reconciliation(snap)


def _reconciliation(snap: Snapshot) -> Iterator[Metric]:
    last = GaugeMetricFamily(
        "hookbird_reconcile_last_success_timestamp_seconds",
        "When a reconciliation last ended well, by what started it.",
        labels=["trigger"],
    )
    for raw_field, at in sorted(snap.latest.items()):
        match metrics.parse_field(raw_field):
            case ("reconcile_last_success", trigger):
                last.add_metric([trigger], at)
    yield last
    yield GaugeMetricFamily(
        "hookbird_reconcile_interval_seconds",
        "HOOKBIRD_RECONCILE_INTERVAL of this receiver: seconds between scheduled "
        "reconciliations (0: off).",
        value=snap.reconcile_interval,
    )
    findings = CounterMetricFamily(
        "hookbird_watchdog_findings",
        "Webhook watchdog checks that found a subscribed webhook with this problem.",
        labels=["problem"],
    )
    counts = {problem: _number(n) for problem, n in snap.watchdog.items()}
    for problem in sorted({*WATCHDOG_PROBLEMS, *counts}):
        findings.add_metric([problem], counts.get(problem, 0.0))
    yield findings


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _counters(raw: Mapping[str, str]) -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "hookbird_handler_runs",
        "Handler runs by handler and outcome (handled, retry, dead_lettered, skipped).",
        labels=["handler", "outcome"],
    )
    retries = 0.0
    requests: dict[str, float] = dict.fromkeys(metrics.STATUS_CLASSES, 0.0)
    limited = 0.0
    buckets: dict[str, dict[str, float]] = {}
    sums: dict[str, float] = {}
    reconciliations: dict[tuple[str, str], float] = {
        (trigger, outcome): 0.0
        for trigger in metrics.RECONCILE_TRIGGERS
        for outcome in metrics.RECONCILE_OUTCOMES
    }
    records = CounterMetricFamily(
        "hookbird_reconcile_records",
        "Records a reconciliation found differing from what hookbird saw, by resource and "
        "kind (new, changed, gone).",
        labels=["resource", "kind"],
    )
    for raw_field, raw_value in sorted(raw.items()):
        series, value = metrics.parse_field(raw_field), _number(raw_value)
        match series:
            case ("handler_runs", handler, outcome):
                runs.add_metric([handler, outcome], value)
            case ("handler_seconds_bucket", handler, le):
                buckets.setdefault(handler, {})[le] = value
            case ("handler_seconds_sum", handler):
                sums[handler] = value
            case ("retries_scheduled",):
                retries = value
            case ("moneybird_requests", status_class):
                requests[status_class] = value
            case ("moneybird_rate_limited",):
                limited = value
            case ("reconcile_runs", trigger, outcome):
                reconciliations[(trigger, outcome)] = value
            case ("reconcile_records", resource, kind):
                records.add_metric([resource, kind], value)
    yield runs
    durations = HistogramMetricFamily(
        "hookbird_handler_duration_seconds",
        "Time one handler took for one push, by handler.",
        labels=["handler"],
    )
    bounds = (*(repr(b) for b in metrics.HANDLER_BUCKETS), "+Inf")
    for handler, counts in sorted(buckets.items()):
        cumulative, points = 0.0, []
        for le in bounds:
            cumulative += counts.get(le, 0.0)
            points.append((le, cumulative))
        durations.add_metric([handler], points, sum_value=sums.get(handler, 0.0))
    yield durations
    yield CounterMetricFamily(
        "hookbird_retries_scheduled",
        "Pushes given a retry after a handler failed.",
        value=retries,
    )
    calls = CounterMetricFamily(
        "hookbird_moneybird_requests",
        "Requests to the Moneybird API by status class (failed: no answer).",
        labels=["status_class"],
    )
    for status_class, count in requests.items():
        calls.add_metric([status_class], count)
    yield calls
    yield CounterMetricFamily(
        "hookbird_moneybird_rate_limited",
        "Moneybird answers 429 (Too Many Requests).",
        value=limited,
    )
    reconcile_runs = CounterMetricFamily(
        "hookbird_reconcile_runs",
        "Reconciliations by what started them (scheduled, cli, watchdog) and how they ended "
        "(ok, failed, budget_wait).",
        labels=["trigger", "outcome"],
    )
    for (trigger, outcome), count in reconciliations.items():
        reconcile_runs.add_metric([trigger, outcome], count)
    yield reconcile_runs
    yield records


class _Families(Collector):
    def __init__(self, found: list[Metric]) -> None:
        self.found = found

    def collect(self) -> Iterator[Metric]:
        return iter(self.found)


def render(snapshot: Snapshot | None) -> bytes:
    """The families of ``snapshot`` in Prometheus text; only ``…_up 0`` without one."""
    found: list[Metric]
    if snapshot is None:
        found = [
            GaugeMetricFamily(
                "hookbird_pipeline_metrics_up",
                "1 when Redis answered this scrape's reads.",
                value=0,
            )
        ]
    else:
        found = list(families(snapshot))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(found))
    return generate_latest(registry)


async def exposition(client: redis.asyncio.Redis, settings: Settings, timeout: float) -> bytes:
    """The pipeline's families in Prometheus text, read from Redis within ``timeout``.

    Rendering a large deployment's figures takes milliseconds of Python: it runs in a
    thread, so the event loop keeps taking pushes meanwhile (it gets the GIL back
    within the interpreter's switch interval) instead of stalling for the whole render.
    """
    snapshot: Snapshot | None
    try:
        async with asyncio.timeout(timeout):
            snapshot = await read(client, settings)
    except (TimeoutError, redis.exceptions.RedisError, OSError):
        snapshot = None
    return await asyncio.to_thread(render, snapshot)
