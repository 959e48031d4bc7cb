"""The webhook watchdog: notice that Moneybird stopped delivering before changes are lost.

Moneybird deactivates a webhook that keeps failing, and gives up on a push after 10
retries; nothing reaches the receiver to say so. Every
``HOOKBIRD_WEBHOOK_WATCHDOG_INTERVAL`` seconds one worker reads the webhooks of each
administration that has a subscribed webhook (one API call per administration) and
judges each subscribed one (:func:`judge`): missing in Moneybird, deactivated, or its
last push answered with something other than 200. A problem is logged, counted
(``hookbird:watchdog:counts``, per kind) and kept in ``hookbird:watchdog`` (webhook id →
JSON) until a check finds the webhook healthy again; ``hookbird doctor`` shows it as ✗.
The counts per kind are on ``/metrics`` as ``hookbird_watchdog_findings_total``.
A problem newly found asks for a reconciliation at once
(:func:`workers.reconcile_schedule.request_now`).
With ``HOOKBIRD_WEBHOOK_REACTIVATE=1`` a deactivated webhook is activated again and its
administration reconciled (:mod:`workers.reconcile`), which queues what was missed.

The check is an RQ job (:func:`watch`) on the workers' queue that schedules its next
run through RQ's scheduler when it ends: one chain of checks, one check at a time
across the fleet. A worker starting up starts the chain (:func:`ensure_scheduled`)
unless a lease (renewed by every run, twice the interval) says one is going.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from rq import Queue

from hookbird import keys, metrics
from hookbird.logs import get_logger
from hookbird.routing import Router
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore
from workers import reconcile_schedule
from workers.reconcile import Reconciler, matched, reconciled_key
from workers.store import text

log = get_logger("hookbird.watchdog")

FINDINGS_KEY = f"{keys.PREFIX}watchdog"
COUNTS_KEY = f"{keys.PREFIX}watchdog:counts"
LEASE_KEY = f"{keys.PREFIX}watchdog:lease"
JOB_ID = "hookbird-webhook-watchdog"
JOB_FUNCTION = "workers.watchdog.watch"

MISSING, DEACTIVATED, FAILING = "missing", "deactivated", "failing"


@dataclass(frozen=True)
class Finding:
    """A subscribed webhook Moneybird is not delivering through, and why."""

    webhook_id: str
    administration_id: str
    problem: str
    detail: str
    reactivated: bool = False


def judge(
    administration_id: str, hooks: Iterable[dict[str, Any]], subscribed: Iterable[str]
) -> list[Finding]:
    """The problems of the subscribed webhooks, from Moneybird's webhook list."""
    by_id = {str(h.get("id")): h for h in hooks}
    found = []
    for webhook_id in subscribed:
        hook = by_id.get(webhook_id)
        if hook is None:
            found.append(
                Finding(webhook_id, administration_id, MISSING, "not in Moneybird any more")
            )
        elif hook.get("deactivated_at"):
            detail = f"deactivated in Moneybird at {hook['deactivated_at']}"
            found.append(Finding(webhook_id, administration_id, DEACTIVATED, detail))
        elif hook.get("last_http_status") not in (None, 200, "200"):
            detail = f"Moneybird's last push got HTTP {hook.get('last_http_status')}"
            found.append(Finding(webhook_id, administration_id, FAILING, detail))
    return found


def findings(connection: redis.Redis) -> dict[str, dict[str, Any]]:
    """What the last checks found wrong, by webhook id (what ``doctor`` shows)."""
    found = {text(k): json.loads(v) for k, v in connection.hgetall(FINDINGS_KEY).items()}
    return {k: v for k, v in found.items() if isinstance(v, dict)}


def check(
    connection: redis.Redis, client: Any, settings: Settings, router: Router | None = None
) -> list[Finding]:
    """Check every subscribed webhook once; record, log and (if allowed) repair."""
    store = SubscriptionStore(connection, settings.secret_key)
    by_administration: dict[str, list[str]] = {}
    for sub in store.list(decrypt=False):
        by_administration.setdefault(sub.administration_id, []).append(sub.webhook_id)
    result = []
    for administration_id, subscribed in sorted(by_administration.items()):
        moneybird = client.administration(administration_id)
        hooks = list(moneybird.webhooks.list())
        found = judge(administration_id, hooks, subscribed)
        for finding in found:
            if finding.problem == DEACTIVATED and settings.webhook_reactivate:
                moneybird.webhooks.activate(finding.webhook_id)
                finding = Finding(**{**finding.__dict__, "reactivated": True})
            result.append(finding)
            if _record(connection, finding) and not finding.reactivated:
                # a gap just began: reconcile now, not at the next scheduled run
                reconcile_schedule.request_now(connection, settings)
        healthy = set(subscribed) - {f.webhook_id for f in found}
        if healthy:
            connection.hdel(FINDINGS_KEY, *healthy)
        if any(f.reactivated for f in result if f.administration_id == administration_id):
            _reconcile(connection, moneybird, settings, router)
    return result


def _record(connection: redis.Redis, finding: Finding) -> bool:
    """Log, count and keep the finding; True when the webhook had no problem before."""
    log.warning(
        "webhook not delivering",
        webhook_id=finding.webhook_id,
        administration_id=finding.administration_id,
        problem=finding.problem,
        detail=finding.detail,
        reactivated=finding.reactivated,
    )
    before = connection.hget(FINDINGS_KEY, finding.webhook_id)
    since = json.loads(before).get("since") if before else None
    with connection.pipeline() as pipe:
        pipe.hincrby(COUNTS_KEY, finding.problem, 1)
        pipe.hset(
            FINDINGS_KEY,
            finding.webhook_id,
            json.dumps(
                {
                    "administration_id": finding.administration_id,
                    "problem": finding.problem,
                    "detail": finding.detail,
                    "reactivated": finding.reactivated,
                    "since": since or time.time(),
                    "checked_at": time.time(),
                }
            ),
        )
        pipe.execute()
    return before is None


def _reconcile(
    connection: redis.Redis, moneybird: Any, settings: Settings, router: Router | None
) -> None:
    """After a reactivation: reconcile what was reconciled here before (else what the
    routes match, which records a baseline)."""
    done = [text(r) for r in connection.hkeys(reconciled_key(moneybird.id))]
    resources = done or (matched(router) if router is not None else [])
    if not resources:
        return
    outcome = "failed"
    try:
        tallies = Reconciler(
            connection,
            moneybird,
            queue=settings.queue,
            retention=settings.event_retention,
            dedup_ttl=settings.dedup_ttl,
        ).run(resources)
        outcome = "ok"
    finally:
        metrics.TALLY.reconcile_run("watchdog", outcome)
    log.info(
        "reconciled after reactivating a webhook",
        administration_id=moneybird.id,
        queued=sum(t.queued for t in tallies),
    )


def ensure_scheduled(connection: redis.Redis, settings: Settings) -> bool:
    """Start the chain of checks unless it is off, there is no subscribed webhook to
    watch, or a chain is going; True if it was started now. Every worker's liveness
    beat calls it (two small reads), so a first webhook subscribed is soon watched."""
    interval = settings.webhook_watchdog_interval
    if interval <= 0 or not connection.scard(keys.WEBHOOKS_INDEX):
        return False
    if not connection.set(LEASE_KEY, "1", nx=True, ex=2 * interval + 60):
        return False
    _schedule(connection, settings)
    return True


def _schedule(connection: redis.Redis, settings: Settings) -> None:
    interval = settings.webhook_watchdog_interval
    connection.set(LEASE_KEY, "1", ex=2 * interval + 60)
    Queue(settings.queue, connection=connection).enqueue_in(
        timedelta(seconds=interval),
        JOB_FUNCTION,
        job_id=f"{JOB_ID}-{time.time_ns()}",  # its own id: the running one finishes after
        description="webhook watchdog",
        result_ttl=interval,
        failure_ttl=7 * 24 * 3600,
    )


def watch() -> int:
    """The RQ job: check, then schedule the next check (whatever the check met)."""
    from workers import runtime

    rt = runtime.current()
    client = None
    try:
        from hookbird.moneybird import Client, MoneybirdError

        client = Client.for_worker(rt.settings, rt.redis)
        return len(check(rt.redis, client, rt.settings, rt.router))
    except MoneybirdError as exc:  # the budget spent, Moneybird down: next time
        log.warning("webhook watchdog could not check", error=repr(exc))
        return -1
    finally:
        if client is not None:
            client.close()
        if rt.settings.webhook_watchdog_interval > 0:
            _schedule(rt.redis, rt.settings)
