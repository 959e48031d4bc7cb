"""The job RQ runs for every push: :func:`process_event`, routing it to the handlers.

The receiver enqueues ``workers.jobs.process_event`` with no arguments; the job id
is the event id and the raw push waits in ``hookbird:event:<id>``. One run:

1. :meth:`Store.begin` (one script call) loads the push and its outcome record and
   takes the entity's turn. Not its turn: the job is parked (an RQ ``Retry`` a few
   seconds out) and woken as soon as the push before it finishes.
2. Every matching handler that has not already succeeded runs, in registration
   order, each with its own :class:`Context`; each outcome is recorded.
3. All done → finished. A transient failure → RQ ``Retry`` at the backoff delay
   (only the failed handlers run next time). A permanent failure, or a handler out
   of attempts → :class:`DeadLettered` is raised, so RQ puts the job in its
   FailedJobRegistry, the dead letter rq-dashboard shows.

A stopping worker whose grace period ran out interrupts the handler; the push goes
back to the front of the queue without using up an attempt.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import replace
from typing import Any

import structlog
from rq import Queue, Retry, get_current_job
from rq.job import Job

from hookbird.context import Context
from hookbird.events import Event, UnreadableEvent, event_from_stored
from hookbird.logs import get_logger
from hookbird.routing import Handler
from workers import runtime
from workers.policy import DEAD, RETRY, Verdict, classify, retry_delay, short_traceback
from workers.store import Store, entity_suffix, state_key, version_key

log = get_logger("hookbird.worker")

#: Retries are counted by hookbird per handler; RQ's own cap only has to be out of reach.
RQ_RETRY_CAP = 10**6
#: Handler outcomes that need no further run.
SETTLED = ("ok", "skipped")
#: Longest wait, in seconds, of a push parked behind an earlier push for its entity.
MAX_PARK = 60


class DeadLettered(Exception):
    """The push goes to the dead letter; the message says which handler and why."""


class Interrupted(BaseException):
    """The worker's shutdown grace ran out while a handler was running."""


_interrupt = threading.Event()
_in_handler = threading.local()


def request_interrupt() -> None:
    """Called from the worker's grace signal: stop the running handler, if any."""
    _interrupt.set()
    if getattr(_in_handler, "name", None):
        raise Interrupted("shutdown grace period over")


_stores: dict[tuple[int, str], Store] = {}


def _store(rt: runtime.Runtime, queue_name: str) -> Store:
    found = _stores.get((id(rt.redis), queue_name))
    if found is None:
        queue = Queue(queue_name, connection=rt.redis)
        found = Store(
            rt.redis,
            wip_key=queue.started_job_registry.key,
            mid_key=queue.intermediate_queue_key,
            scheduled_key=queue.scheduled_job_registry.key,
        )
        _stores[(id(rt.redis), queue_name)] = found
    return found


def entity_from_meta(meta: dict[str, Any]) -> tuple[str, str, str] | None:
    adm, etype, eid = (meta.get(k) for k in ("administration_id", "entity_type", "entity_id"))
    if adm and etype and eid:
        return (str(adm), str(etype), str(eid))
    return None


def describe_job(event: Event, handlers: list[Handler]) -> str:
    """``contact_created Contact 456 adm 123 → crm:sync_contact``: what rq-dashboard shows."""
    names = ", ".join(h.name for h in handlers) if handlers else "(no handlers)"
    return f"{event.summary()} → {names}"


def process_event() -> Any:
    """Run the current job's push through its handlers (see the module docstring)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_event runs inside an RQ job")
    rt = runtime.current()
    store = _store(rt, job.origin)
    entity = entity_from_meta(job.meta or {})
    token = f"{job.id}:{os.urandom(4).hex()}"
    retention = rt.settings.event_retention
    begun = store.begin(job.id, token, (job.timeout or 600) + 60, entity, retention)
    if begun.verdict == "expired":
        log.warning("push expired before it was handled", event_id=job.id)
        return {"event_id": job.id, "status": "expired"}
    try:
        event = event_from_stored(job.id, begun.stored)
    except UnreadableEvent as exc:
        raise DeadLettered(str(exc)) from None
    with structlog.contextvars.bound_contextvars(
        event_id=event.event_id, action=event.action, administration_id=event.administration_id
    ):
        if begun.verdict == "wait":
            return _park(rt, store, job, event, entity, begun.state)
        return _dispatch(rt, store, job, event, entity, token, begun.state)


def _park(
    rt: runtime.Runtime,
    store: Store,
    job: Job,
    event: Event,
    entity: tuple[str, str, str] | None,
    state: dict[str, str],
) -> Retry:
    parks = int(state.get("parks", "0")) + 1
    delay = min(2 ** (parks - 1), MAX_PARK)
    store.finish(
        event.event_id,
        "",
        entity=entity,
        done="park",
        ttl=rt.settings.event_retention,
        description="",
        now=time.time(),
        fields={"status": "waiting", "parks": str(parks), "updated_at": repr(time.time())},
    )
    log.info("waiting for an earlier push for the same entity", recheck_in=delay)
    return Retry(max=RQ_RETRY_CAP, interval=delay)


def _run_one(
    rt: runtime.Runtime, event: Event, handler: Handler, record: dict[str, Any]
) -> Verdict | None:
    """Run one handler; None on success, else what to do about its failure."""
    record["attempts"] = int(record.get("attempts", 0)) + 1
    ctx = Context(
        event=replace(event, attempt=record["attempts"]),
        handler=handler.name,
        settings=rt.settings,
        redis=rt.redis,
        log=log.bind(handler=handler.name),
        moneybird_factory=rt.moneybird,
    )
    started = time.perf_counter()
    _in_handler.name = handler.name
    try:
        if _interrupt.is_set():
            raise Interrupted("shutdown grace period over")
        handler.func(ctx.event, ctx)
    except (Interrupted, SystemExit, KeyboardInterrupt):
        record["attempts"] -= 1
        record.update(status="interrupted", at=time.time())
        raise Interrupted("stopped while running") from None
    except Exception as exc:
        verdict = classify(exc, time.time())
        record.update(
            status="failed" if verdict.kind == RETRY else "dead",
            error=verdict.reason,
            traceback=short_traceback(exc),
            at=time.time(),
        )
        ctx.log.warning("handler failed", error=verdict.reason, outcome=verdict.kind)
        return verdict
    finally:
        _in_handler.name = None
    record.update(status="ok", error=None, at=time.time())
    record["ms"] = round((time.perf_counter() - started) * 1000, 1)
    record.pop("traceback", None)
    return None


def _is_stale(
    rt: runtime.Runtime, handler: Handler, event: Event, suffix: str | None
) -> str | None:
    if not handler.latest_only or event.version is None or suffix is None:
        return None
    seen = rt.redis.get(version_key(handler.name, suffix))
    if seen is not None and int(seen) > event.version:
        return f"version {event.version} is older than {int(seen)}, already handled"
    return None


def _dispatch(
    rt: runtime.Runtime,
    store: Store,
    job: Job,
    event: Event,
    entity: tuple[str, str, str] | None,
    token: str,
    state: dict[str, str],
) -> Any:
    handlers = rt.router.handlers_for(event.action, event.entity_type)
    job.description = describe_job(event, handlers)
    outcomes: dict[str, dict[str, Any]] = json.loads(state.get("handlers") or "{}")
    pending = [h for h in handlers if outcomes.get(h.name, {}).get("status") not in SETTLED]
    suffix = entity_suffix(*entity) if entity else None
    verdicts: list[tuple[str, Verdict]] = []
    interrupted = False
    for handler in pending:
        record = outcomes.setdefault(handler.name, {})
        stale = _is_stale(rt, handler, event, suffix)
        if stale:
            record.update(status="skipped", reason=stale, at=time.time())
            log.info("skipped a stale version", handler=handler.name, reason=stale)
            continue
        try:
            verdict = _run_one(rt, event, handler, record)
        except Interrupted:
            interrupted = True
            break
        if verdict is None:
            if handler.latest_only and event.version is not None and suffix:
                key = version_key(handler.name, suffix)
                rt.redis.set(key, event.version, ex=rt.settings.event_retention)
        else:
            verdicts.append((handler.name, verdict))
            if verdict.reason.startswith("timed out"):
                break  # the job's time is spent; the rest run on the retry
        if len(pending) > 1:  # a crash later in this run must not re-run this handler
            rt.redis.hset(state_key(event.event_id), "handlers", json.dumps(outcomes))
    return _conclude(rt, store, job, event, entity, token, state, outcomes, verdicts, interrupted)


def _conclude(
    rt: runtime.Runtime,
    store: Store,
    job: Job,
    event: Event,
    entity: tuple[str, str, str] | None,
    token: str,
    state: dict[str, str],
    outcomes: dict[str, dict[str, Any]],
    verdicts: list[tuple[str, Verdict]],
    interrupted: bool,
) -> Any:
    now = time.time()
    runs = int(state.get("attempts", "0")) + (0 if interrupted else 1)
    fields = {"handlers": json.dumps(outcomes), "attempts": str(runs), "updated_at": repr(now)}
    settings = rt.settings
    dead = [(n, v) for n, v in verdicts if v.kind == DEAD]
    failing = [(n, v) for n, v in verdicts if v.kind == RETRY]
    worst = max((int(outcomes[n].get("attempts", 0)) for n, _ in failing), default=0)
    if failing and worst >= settings.max_attempts:
        dead += [
            (n, replace(v, reason=f"gave up after {worst} attempts: {v.reason}"))
            for n, v in failing
        ]
    result: Any
    if interrupted:
        done, result = "no", Retry(max=RQ_RETRY_CAP, interval=0, enqueue_at_front=True)
        fields.update(status="queued", error="interrupted by a worker shutdown")
    elif dead:
        reason = "; ".join(f"{n}: {v.reason}" for n, v in dead)
        done, result = "dead", DeadLettered(reason)
        fields.update(status="dead", error=reason)
    elif failing:
        delay = retry_delay(worst, settings.retry_base, [v for _, v in failing], now)
        done, result = "no", Retry(max=RQ_RETRY_CAP, interval=delay)
        reason = "; ".join(f"{n}: {v.reason}" for n, v in failing)
        fields.update(status="retrying", error=reason, next_attempt_at=repr(now + delay))
        log.info("push will be retried", retry_in=delay, error=reason)
    else:
        done, result = "yes", {"event_id": event.event_id, "status": "succeeded"}
        fields.update(status="succeeded", error="")
    ttl = settings.event_retention
    if done == "dead":
        ttl = max(ttl, int(job.failure_ttl or 0))
    woken = store.finish(
        event.event_id,
        token,
        entity=entity,
        done=done,
        ttl=ttl,
        description=job.description or "",
        now=now,
        fields=fields,
    )
    if woken:
        wake(rt, job.origin, woken)
    if isinstance(result, DeadLettered):
        log.error("push sent to the dead letter", error=str(result))
        raise result
    return result


def wake(rt: runtime.Runtime, queue_name: str, event_id: str) -> None:
    """Put a parked push at the front of the queue: the push before it just finished."""
    try:
        parked = Job.fetch(event_id, connection=rt.redis)
    except Exception:  # the job expired meanwhile: nothing to wake
        return
    Queue(queue_name, connection=rt.redis).enqueue_job(parked, at_front=True)
