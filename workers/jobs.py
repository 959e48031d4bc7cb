"""The job RQ runs for every push: :func:`process_event`, routing it to the handlers.

The receiver enqueues ``workers.jobs.process_event`` with no arguments; the job id
is the event id and the raw push waits in ``hookbird:event:<id>``. One run:

1. :meth:`Store.begin` (one script call) loads the push and its outcome record and
   takes the entity's turn. Not its turn: the job is parked (an RQ ``Retry`` a few
   seconds out) and woken as soon as the push before it finishes.
2. Every matching handler that has not already succeeded runs, in registration
   order, each with its own :class:`Context`; each outcome is recorded. A batch
   handler's push joins its batch instead and waits (``waiting``, keeping its
   entity's turn) until a run leads the batch; the run after that concludes from the
   outcome the leader recorded for it (:mod:`workers.batching`).
3. All done → finished. A transient failure → RQ ``Retry`` at the backoff delay
   (only the failed handlers run next time). A permanent failure, or a handler out
   of attempts → :class:`DeadLettered` is raised, so RQ puts the job in its
   FailedJobRegistry, the dead letter rq-dashboard shows.

A stopping worker whose grace period ran out interrupts the handler
(:mod:`workers.running`); the push goes back to the front of the queue without using
up an attempt. What becomes of a push after a run is :func:`workers.policy.decide`.

Whatever goes wrong in hookbird's own part of a run (a body that breaks the JSON
parser, Redis failing between the two scripts) releases the entity's turn at once
rather than leaving it locked until the lock expires, and dead-letters the push with
the reason: a :class:`_Turn` is finished exactly once, on every path.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import redis
import structlog
from rq import Queue, Retry, get_current_job
from rq.job import Job

from hookbird import versions
from hookbird.events import Event, UnreadableEvent, event_from_stored
from hookbird.labels import label
from hookbird.logs import get_logger
from hookbird.metrics import TALLY
from hookbird.routing import Handler
from workers import batching, runtime
from workers.policy import Verdict, decide, describe, park_delay
from workers.running import Interrupted, is_stale, run_many, run_one
from workers.states import BeginVerdict, Done, HandlerStatus, Status
from workers.store import (
    Store,
    entity_lock_key,
    entity_suffix,
    state_key,
    stored_push,
    text,
    version_key,
)

log = get_logger("hookbird.worker")

#: Retries are counted by hookbird per handler; RQ's own cap only has to be out of reach.
RQ_RETRY_CAP = 10**6
#: Handler outcomes that need no further run.
SETTLED = (HandlerStatus.OK, HandlerStatus.SKIPPED)


class DeadLettered(Exception):
    """The push goes to the dead letter; the message says which handler and why."""


class _Turn:
    """One run's hold on its push and its entity: FINISH runs once, whatever happens."""

    def __init__(
        self, store: Store, event_id: str, token: str, entity: tuple[str, str, str] | None
    ):
        self.store = store
        self.event_id = event_id
        self.token = token
        self.entity = entity
        self.finished = False

    def finish(self, **outcome: Any) -> str | None:
        """:meth:`Store.finish` for this run: records the outcome, releases the entity."""
        self.finished = True
        return self.store.finish(self.event_id, self.token, entity=self.entity, **outcome)

    def abandon(self, ttl: int, reason: str | None) -> None:
        """After an exception hookbird did not expect: dead-letter the push with ``reason``
        (None: only release the entity, the push stays to run again), if not finished.

        Best effort: when Redis itself is failing the entity lock still expires on its own.
        """
        if self.finished:
            return
        now = time.time()
        fields = {} if reason is None else {"status": Status.DEAD, "error": reason}
        try:
            self.finish(
                done=Done.AGAIN if reason is None else Done.DEAD,
                ttl=ttl,
                description="",
                now=now,
                fields={**fields, "updated_at": repr(now)},
            )
        except Exception as exc:  # the original exception is the one worth raising
            log.error("could not release the entity after a failed run", error=describe(exc))


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


_ENTITY_FIELDS = ("administration_id", "entity_type", "entity_id")


def entity_in(fields: Any) -> tuple[str, str, str] | None:
    """(administration, entity type, entity id) from a push's fields, if it names all three."""
    adm, etype, eid = (fields.get(k) for k in _ENTITY_FIELDS)
    if adm and etype and eid:
        return (text(adm), text(etype), text(eid))
    return None


def entity_of(connection: redis.Redis, job: Job) -> tuple[str, str, str] | None:
    """The entity a job's push is about, which decides the order it runs in.

    Jobs from receivers before 2026-11-22, and replays, carry it in their meta. The
    receiver now writes no meta (it kept RQ's job hash from fitting Redis's compact
    encoding), so it is read from the stored push's header: one more round trip.
    """
    return entity_in(job.meta or {}) or entity_in(stored_push(connection, job.id))


def describe_job(event: Event, handlers: list[Handler]) -> str:
    """``contact_created Contact 456 adm 123 → crm:sync_contact``: what rq-dashboard shows.

    A handled push names every handler it reached; a push still to run again (retry,
    dead letter, interrupted) names only the handlers that run then. What came from the
    push passes :func:`~hookbird.labels.label`: rq-dashboard does not escape it.
    """
    names = ", ".join(label(h.name) for h in handlers) if handlers else "(no handlers)"
    parts = [event.action, event.entity_type, event.entity_id, "adm", event.administration_id]
    return " ".join(label(part) for part in parts if part) + f" → {names}"


def job_meta(event: Event) -> dict[str, str]:
    """What rq-dashboard shows as a handled job's metadata (labels only, see describe_job)."""
    return {
        "event_id": label(event.event_id),
        "action": label(event.action),
        "administration_id": label(event.administration_id),
        "entity_type": label(event.entity_type),
        "entity_id": label(event.entity_id),
    }


def process_event() -> Any:
    """Run the current job's push through its handlers (see the module docstring)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_event runs inside an RQ job")
    rt = runtime.current()
    store = _store(rt, job.origin)
    entity = entity_of(rt.redis, job)
    token = f"{job.id}:{os.urandom(4).hex()}"
    retention = rt.settings.event_retention
    begun = store.begin(job.id, token, (job.timeout or 600) + 60, entity, retention)
    if begun.verdict == BeginVerdict.EXPIRED:
        log.warning("push expired before it was handled", event_id=job.id)
        # an outcome record left by an earlier run (its crash count) goes with the push
        rt.redis.expire(state_key(job.id), retention)
        return {"event_id": job.id, "status": Status.EXPIRED.value}
    turn = _Turn(store, job.id, token, entity)
    dead_ttl = max(retention, int(job.failure_ttl or 0))
    try:
        try:
            event = event_from_stored(job.id, begun.stored)
        except UnreadableEvent as exc:  # nothing to retry: record it, release the entity
            turn.abandon(dead_ttl, str(exc))
            raise DeadLettered(str(exc)) from None
        except Exception as exc:  # a body the parser chokes on (RecursionError from nesting)
            reason = f"event {job.id}: body cannot be read ({describe(exc)})"
            turn.abandon(dead_ttl, reason)
            raise DeadLettered(reason) from None
        with structlog.contextvars.bound_contextvars(
            event_id=event.event_id, action=event.action, administration_id=event.administration_id
        ):
            run = _Run(rt, turn, job, event, begun.state)
            if begun.verdict == BeginVerdict.WAIT:
                return _park(run)
            seen, own = _seen(rt, job, event, begun.stored)
            return _dispatch(replace(run, seen=seen, event=replace(event, own_write=own)))
    except DeadLettered:
        raise
    except Exception as exc:
        reason = f"hookbird failed while handling the push: {describe(exc)}"
        log.error("push sent to the dead letter", event_id=job.id, error=reason)
        turn.abandon(dead_ttl, reason)
        raise DeadLettered(reason) from exc
    except BaseException:  # the worker is going away: free the entity, keep the push
        turn.abandon(retention, None)
        raise


@dataclass(frozen=True)
class _Run:
    """One run of one push: what :func:`_park`, :func:`_dispatch` and :func:`_conclude` share.

    ``state`` is the outcome record as the run found it. What running the handlers
    produced (the last four fields) is filled in by :func:`_dispatch`, with
    ``dataclasses.replace``, for :func:`_conclude`.
    """

    rt: runtime.Runtime
    turn: _Turn
    job: Job
    event: Event
    state: dict[str, str]
    #: every handler the push matches, in registration order
    handlers: list[Handler] = field(default_factory=list)
    #: handler name → its outcome record, this run's included
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[tuple[str, Verdict]] = field(default_factory=list)
    interrupted: bool = False
    #: why every handler skips this push: its version was already delivered (``_seen``)
    seen: str | None = None
    #: the push waits for a batch of a batch handler (:mod:`workers.batching`)
    waiting: batching.Joined | None = None
    #: ``batch:<handler>`` fields of the record concluded from this run (cleared by finish)
    taken: dict[str, str] = field(default_factory=dict)


_seen_stores: dict[int, versions.Versions] = {}


def _echo(handler: Handler, event: Event) -> str | None:
    if handler.skip_own_writes and event.own_write:
        return f"version {event.version} is hookbird's own write (skip_own_writes)"
    return None


def _seen(
    rt: runtime.Runtime, job: Job, event: Event, stored: dict[str, Any]
) -> tuple[str | None, bool]:
    """Record the push's entity version as seen (:mod:`hookbird.versions`), once per push:
    why its handlers skip it when a push or a reconciliation already delivered it, and
    whether the version is hookbird's own write (``event.own_write``)."""
    destroyed = event.action.endswith("_destroyed")
    store = _seen_stores.get(id(rt.redis))
    if store is None:
        store = _seen_stores[id(rt.redis)] = versions.Versions(rt.redis)
    if event.entity_key is None or (event.version is None and not destroyed):
        return None, False
    if event.entity_type not in versions.ENTITY_TYPES:
        # not synchronizable: no version kept; asked about own writes only when a route cares
        if event.version is None or not any(
            h.skip_own_writes for h in rt.router.handlers_for(event.action, event.entity_type)
        ):
            return None, False
        own = store.own_write(event.administration_id, event.entity_id or "", event.version)
        return None, own
    source = event.source
    if (job.meta or {}).get("replay"):
        source = "replay"  # run on purpose: every handler runs
    elif text(stored.get("backfill", "")) == "1":
        source = versions.Source.BACKFILL
    verdict, own = store.claim(
        administration_id=event.administration_id,
        entity_type=event.entity_type or "",
        entity_id=event.entity_id or "",
        version=event.version,
        source=source,
        destroyed=destroyed,
        state_key=state_key(event.event_id),
        ttl=rt.settings.event_retention,
    )
    if verdict == versions.Verdict.RUN:
        return None, own
    if destroyed:
        return "already gone: a push about its destruction was handled", own
    return f"version {event.version} was already delivered to the handlers", own


def _park(run: _Run) -> Retry:
    parks = int(run.state.get("parks", "0")) + 1
    delay = park_delay(parks)
    free = run.turn.finish(
        done=Done.PARKED,
        ttl=run.rt.settings.event_retention,
        description="",
        now=time.time(),
        fields={"status": Status.WAITING, "parks": str(parks), "updated_at": repr(time.time())},
    )
    if free:  # the push before it finished in the meantime: go again right away
        return Retry(max=RQ_RETRY_CAP, interval=0, enqueue_at_front=True)
    log.info("waiting for an earlier push for the same entity", recheck_in=delay)
    return Retry(max=RQ_RETRY_CAP, interval=delay)


def _dispatch(run: _Run) -> Any:
    rt, event = run.rt, run.event
    handlers = rt.router.handlers_for(event.action, event.entity_type)
    outcomes: dict[str, dict[str, Any]] = json.loads(run.state.get("handlers") or "{}")
    pending = _unsettled(handlers, outcomes)
    run.job.description = describe_job(event, pending)
    suffix = entity_suffix(*run.turn.entity) if run.turn.entity else None
    failures: list[tuple[str, Verdict]] = []
    interrupted = False
    batched: list[Handler] = []
    taken: dict[str, str] = {}
    for handler in pending:
        record = outcomes.setdefault(handler.name, {})
        if handler.batch:  # after the others (workers.batching)
            found = batching.taken_outcome(run.state, handler)
            if found is None:
                batched.append(handler)
            else:
                _take(run, handler, record, found, taken, failures)
            continue
        stale = run.seen or _echo(handler, event) or is_stale(rt, handler, event, suffix)
        if stale:
            _skip(handler, record, stale)
            continue
        try:
            verdict = run_one(rt, event, handler, record)
        except Interrupted:
            interrupted = True
            break
        if verdict is None:
            _handled(rt, handler, event, suffix)
        else:
            failures.append((handler.name, verdict))
            if verdict.reason.startswith("timed out"):
                break  # the job's time is spent; the rest run on the retry
        if len(pending) > 1:  # a crash later in this run must not re-run this handler
            rt.redis.hset(state_key(event.event_id), "handlers", json.dumps(outcomes))
    waiting: batching.Joined | None = None
    for handler in batched:
        if failures or interrupted:
            break  # joins on the retry: a batch never waits on the push's other handlers
        record = outcomes[handler.name]
        stale = run.seen or _echo(handler, event) or is_stale(rt, handler, event, suffix)
        joining = record.get("status") != HandlerStatus.BATCHED  # not yet in its batch
        if not stale and joining and handler.latest_only and suffix:
            stale = batching.superseded(rt, handler, event, suffix)
        if stale:
            _skip(handler, record, stale)
            continue
        try:
            joined = _batch(run, handler, record, taken, failures)
        except Interrupted:
            interrupted = True
            break
        if joined is not None and (waiting is None or joined.park_for() < waiting.park_for()):
            waiting = joined
    ran = replace(
        run,
        handlers=handlers,
        outcomes=outcomes,
        failures=failures,
        interrupted=interrupted,
        waiting=waiting,
        taken=taken,
    )
    return _conclude(ran)


def _skip(handler: Handler, record: dict[str, Any], reason: str) -> None:
    record.update(status=HandlerStatus.SKIPPED, reason=reason, at=time.time())
    log.info("skipped a stale version", handler=handler.name, reason=reason)
    TALLY.handler_run(handler.name, "skipped")


def _handled(rt: runtime.Runtime, handler: Handler, event: Event, suffix: str | None) -> None:
    TALLY.handler_run(handler.name, "handled")
    if handler.latest_only and event.version is not None and suffix:
        key = version_key(handler.name, suffix)
        rt.redis.set(key, event.version, ex=rt.settings.event_retention)


def _settle(
    rt: runtime.Runtime,
    handler: Handler,
    event: Event,
    suffix: str | None,
    verdict: Verdict | None,
    failures: list[tuple[str, Verdict]],
) -> None:
    """A batch handler's verdict on this push: handled, or one more failure to decide on."""
    if verdict is None:
        _handled(rt, handler, event, suffix)
    else:
        failures.append((handler.name, verdict))


def _take(
    run: _Run,
    handler: Handler,
    record: dict[str, Any],
    found: dict[str, Any],
    taken: dict[str, str],
    failures: list[tuple[str, Verdict]],
) -> None:
    """Conclude from the outcome a batch's leader recorded for this push."""
    record.clear()
    record.update(found)
    taken[batching.outcome_field(handler.name)] = ""  # consumed in the same finish
    suffix = entity_suffix(*run.turn.entity) if run.turn.entity else None
    _settle(run.rt, handler, run.event, suffix, batching.verdict_of(record), failures)


#: Rounds a run leads batches in which its own push was not taken (more than N waiting).
LEAD_ROUNDS = 5


def _batch(
    run: _Run,
    handler: Handler,
    record: dict[str, Any],
    taken: dict[str, str],
    failures: list[tuple[str, Verdict]],
) -> batching.Joined | None:
    """Put the push in ``handler``'s batch; lead the batch when it is due. None: concluded
    this run; else how the push waits for its batch."""
    rt, event, turn = run.rt, run.event, run.turn
    if turn.entity is None:  # no entity lock to vouch for a claim: a batch of one, now
        (verdict,) = run_many(rt, [event], handler, {event.event_id: record}).values()
        _settle(rt, handler, event, None, verdict, failures)
        return None
    batches = _batches(rt, run.job.origin)
    lock = entity_lock_key(entity_suffix(*turn.entity))
    for _ in range(LEAD_ROUNDS):
        joined = batches.join(
            handler,
            event.administration_id,
            event.event_id,
            token=turn.token,
            lock_key=lock,
            now=time.time(),
            ttl=rt.settings.event_retention,
        )
        if joined.verdict != "lead":
            record.update(status=HandlerStatus.BATCHED, at=time.time())
            log.info("waiting for its batch", handler=handler.name, recheck_in=joined.park_for())
            return joined
        woken = batching.lead(
            rt,
            batches,
            handler,
            event.administration_id,
            joined.ids,
            token=turn.token,
            leader=event.event_id,
        )
        for other in woken:
            wake(rt, run.job.origin, other)
        if event.event_id in joined.ids:
            raw = rt.redis.hget(state_key(event.event_id), batching.outcome_field(handler.name))
            found = batching.taken_outcome(
                {batching.outcome_field(handler.name): text(raw or "")}, handler
            )
            if found is not None:
                _take(run, handler, record, found, taken, failures)
                return None
    record.update(status=HandlerStatus.BATCHED, at=time.time())
    return batching.Joined("wait")


_batch_stores: dict[tuple[int, str], batching.Batches] = {}


def _batches(rt: runtime.Runtime, queue_name: str) -> batching.Batches:
    found = _batch_stores.get((id(rt.redis), queue_name))
    if found is None:
        scheduled = Queue(queue_name, connection=rt.redis).scheduled_job_registry.key
        found = batching.Batches(rt.redis, scheduled_key=scheduled)
        _batch_stores[(id(rt.redis), queue_name)] = found
    return found


def _unsettled(handlers: list[Handler], outcomes: dict[str, dict[str, Any]]) -> list[Handler]:
    """The handlers a run of the push still has to run: none succeeded or was skipped."""
    return [h for h in handlers if outcomes.get(h.name, {}).get("status") not in SETTLED]


def _conclude(run: _Run) -> Any:
    rt, job, event, outcomes = run.rt, run.job, run.event, run.outcomes
    now = time.time()
    settings = rt.settings
    decision = decide(
        run.failures,
        {name: int(record.get("attempts", 0)) for name, record in outcomes.items()},
        interrupted=run.interrupted,
        max_attempts=settings.max_attempts,
        base=settings.retry_base,
        now=now,
    )
    # Logged once the push's fate is known: a handler's last attempt is no "retry".
    outcome = {Status.RETRYING: "retry", Status.DEAD: "dead"}.get(decision.status, decision.status)
    for name, verdict in run.failures:
        TALLY.handler_run(name, "dead_lettered" if decision.status == Status.DEAD else "retry")
        attempt = outcomes[name].get("attempts")
        log.warning(
            "handler failed", handler=name, attempt=attempt, error=verdict.reason, outcome=outcome
        )
    waiting = run.waiting if decision.status == Status.SUCCEEDED else None
    if decision.status != Status.SUCCEEDED or waiting:  # name what the next run runs
        job.description = describe_job(event, _unsettled(run.handlers, outcomes))
    else:
        job.description = describe_job(event, run.handlers)
    counted = not run.interrupted and not waiting
    runs = int(run.state.get("attempts", "0")) + (1 if counted else 0)
    fields = {
        **run.taken,
        "handlers": json.dumps(outcomes),
        "attempts": str(runs),
        "updated_at": repr(now),
        "status": Status.WAITING if waiting else decision.status,
        "error": decision.reason,
    }
    done = {Status.SUCCEEDED: Done.HANDLED, Status.DEAD: Done.DEAD}.get(decision.status, Done.AGAIN)
    if waiting:  # keeps its place at the head of its entity's line until the batch ran
        done = Done.AGAIN
    if decision.status == Status.RETRYING and decision.delay is not None:
        fields["next_attempt_at"] = repr(now + decision.delay)
        TALLY.retry_scheduled()
        log.info("push will be retried", retry_in=decision.delay, error=decision.reason)
    ttl = settings.event_retention
    if done == Done.DEAD:  # keep the raw push as long as the dead letter shows it
        ttl = max(ttl, int(job.failure_ttl or 0))
    woken = run.turn.finish(
        done=done,
        ttl=ttl,
        description=job.description or "",
        meta=job.serializer.dumps(job_meta(event)),
        now=now,
        fields=fields,
    )
    if woken:
        wake(rt, job.origin, woken)
    if decision.status == Status.DEAD:
        log.error("push sent to the dead letter", error=decision.reason)
        raise DeadLettered(decision.reason)
    if waiting:
        return Retry(max=RQ_RETRY_CAP, interval=waiting.park_for())
    if decision.status == Status.SUCCEEDED:
        return {"event_id": event.event_id, "status": Status.SUCCEEDED.value}
    front = decision.status == Status.QUEUED
    return Retry(max=RQ_RETRY_CAP, interval=decision.delay or 0, enqueue_at_front=front)


def wake(rt: runtime.Runtime, queue_name: str, event_id: str) -> None:
    """Put a parked push at the front of the queue: the push before it just finished."""
    try:
        parked = Job.fetch(event_id, connection=rt.redis)
    except Exception:  # the job expired meanwhile: nothing to wake
        return
    Queue(queue_name, connection=rt.redis).enqueue_job(parked, at_front=True)
