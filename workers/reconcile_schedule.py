"""Scheduled reconciliation: the workers reconcile every administration by themselves.

Every ``HOOKBIRD_RECONCILE_INTERVAL`` seconds an RQ job (:func:`reconcile_all`) reconciles
each administration hookbird has credentials or a subscribed webhook for: the resources
reconciled there before, or, the first time, those an installed route matches (which
records a baseline). The job schedules its successor through RQ's scheduler when it
ends, so there is one chain; a Redis lock (``hookbird:reconcile:running``) keeps a run
requested at once (:func:`request_now`, after the watchdog found a webhook not
delivering) from overlapping a chained one: one run at a time across the fleet.

A scheduled run uses at most ``HOOKBIRD_RECONCILE_BUDGET_SHARE`` of the shared rate
budget (:class:`workers.reconcile.ShareSpent`): handlers come first. When its share is
used it stops, and the next run is scheduled for when the share is free again rather
than a whole interval later; it finds what is left (nothing is queued twice).

Each run is counted for ``/metrics`` (``hookbird_reconcile_runs_total``: trigger
``scheduled`` for the chain, ``watchdog`` for a run :func:`request_now` asked for;
outcome ``ok``, ``failed`` or ``budget_wait``); the worker's next beat flushes it.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from rq import Queue

from hookbird import keys, metrics
from hookbird.logs import get_logger
from hookbird.moneybird.credentials import INDEX as CREDENTIALS_INDEX
from hookbird.moneybird.credentials import CredentialStore
from hookbird.routing import Router
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore
from workers.reconcile import Reconciler, ShareSpent, matched, reconciled_key
from workers.store import text

log = get_logger("hookbird.reconcile")

LEASE_KEY = f"{keys.PREFIX}reconcile:lease"
LOCK_KEY = f"{keys.PREFIX}reconcile:running"
JOB_PREFIX = "hookbird-reconcile-"
JOB_FUNCTION = "workers.reconcile_schedule.reconcile_all"


def administrations(connection: redis.Redis, settings: Settings) -> list[str]:
    """Every administration with stored credentials or a subscribed webhook."""
    found = set(CredentialStore(connection, settings.secret_key).administrations())
    found.update(s.administration_id for s in SubscriptionStore(connection).list(decrypt=False))
    return sorted(found)


def run_once(
    connection: redis.Redis,
    client: Any,
    settings: Settings,
    router: Router,
    *,
    trigger: str = "scheduled",
) -> float | None:
    """Reconcile every administration once, within the budget share; when to run next if
    the share ran out (epoch seconds), else None. Nothing happens while another runs.
    The run's outcome is counted under ``trigger`` (:data:`hookbird.metrics.RECONCILE_TRIGGERS`)."""
    token = secrets.token_hex(8)
    if not connection.set(LOCK_KEY, token, nx=True, ex=3600):
        log.info("a reconciliation is already running; not starting another")
        return None
    outcome = "failed"
    try:
        for administration_id in administrations(connection, settings):
            done = [text(r) for r in connection.hkeys(reconciled_key(administration_id))]
            resources = done or matched(router)
            if not resources:
                continue
            reconciler = Reconciler(
                connection,
                client.administration(administration_id),
                queue=settings.queue,
                retention=settings.event_retention,
                dedup_ttl=settings.dedup_ttl,
                budget_share=settings.reconcile_budget_share,
            )
            try:
                tallies = reconciler.run(resources)
            except ShareSpent as exc:
                log.info(
                    "reconciliation paused: its share of the rate budget is used",
                    administration_id=administration_id,
                    resume_at=round(exc.retry_at),
                )
                outcome = "budget_wait"
                return exc.retry_at
            log.info(
                "reconciled",
                administration_id=administration_id,
                queued=sum(t.queued for t in tallies),
                calls=sum(t.calls for t in tallies),
            )
        outcome = "ok"
        return None
    finally:
        metrics.TALLY.reconcile_run(trigger, outcome)
        if connection.get(LOCK_KEY) == token.encode():
            connection.delete(LOCK_KEY)


def ensure_scheduled(connection: redis.Redis, settings: Settings) -> bool:
    """Start the chain of runs unless it is off, there is no administration to reconcile,
    or a chain is going; True if it was started now. Every worker's liveness beat calls
    it (three small commands)."""
    interval = settings.reconcile_interval
    if interval <= 0:
        return False
    if not connection.scard(keys.WEBHOOKS_INDEX) and not connection.scard(CREDENTIALS_INDEX):
        return False  # no administration to reconcile yet
    if not connection.set(LEASE_KEY, "1", nx=True, ex=2 * interval + 60):
        return False
    schedule(connection, settings, time.time() + interval)
    return True


def schedule(
    connection: redis.Redis, settings: Settings, at: float, *, chained: bool = True
) -> None:
    """Put a run in RQ's scheduler for ``at``; a chained run renews the lease."""
    if chained:
        connection.set(LEASE_KEY, "1", ex=2 * settings.reconcile_interval + 60)
    Queue(settings.queue, connection=connection).enqueue_at(
        datetime.fromtimestamp(at, UTC),
        JOB_FUNCTION,
        kwargs={"chained": chained},
        job_id=f"{JOB_PREFIX}{time.time_ns()}",
        description="scheduled reconciliation" if chained else "reconciliation after a gap",
        result_ttl=max(settings.reconcile_interval, 600),
        failure_ttl=7 * 24 * 3600,
    )


def request_now(connection: redis.Redis, settings: Settings) -> None:
    """A run as soon as a worker is free (a gap was detected); the chain goes on as it was."""
    if settings.reconcile_interval > 0:
        Queue(settings.queue, connection=connection).enqueue_in(
            timedelta(0),
            JOB_FUNCTION,
            kwargs={"chained": False},
            job_id=f"{JOB_PREFIX}{time.time_ns()}",
            description="reconciliation after a gap",
            result_ttl=600,
            failure_ttl=7 * 24 * 3600,
        )


def reconcile_all(chained: bool = True) -> None:
    """The RQ job: one run, then (chained) the next one scheduled, whatever happened."""
    from workers import runtime

    rt = runtime.current()
    settings = rt.settings
    resume_at: float | None = None
    client = None
    try:
        from hookbird.moneybird import Client, MoneybirdError

        client = Client.for_worker(settings, rt.redis)
        try:
            trigger = "scheduled" if chained else "watchdog"  # request_now: the watchdog's
            resume_at = run_once(rt.redis, client, settings, rt.router, trigger=trigger)
        except MoneybirdError as exc:  # Moneybird down, budget spent: next time
            log.warning("scheduled reconciliation failed", error=repr(exc))
    finally:
        if client is not None:
            client.close()
        if chained and settings.reconcile_interval > 0:
            schedule(rt.redis, settings, resume_at or time.time() + settings.reconcile_interval)
