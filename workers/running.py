"""Running one handler for one push: its Context, its outcome record, interruption.

:func:`run_one` calls the handler with a fresh :class:`~hookbird.Context` and
records the outcome in ``record`` (status, attempts, error, last traceback, time),
and each attempt's time, duration and outcome in its ``history`` (the newest
:data:`HISTORY` attempts), which the events console draws as the push's timeline.
A stopping worker whose grace period ran out interrupts a running handler with
:class:`Interrupted` (raised from the SIGUSR1 handler, and only while a handler
runs, so RQ's own bookkeeping is never cut in half).

:func:`run_many` does the same for a batch handler (:mod:`workers.batching`): one call
for a list of events, one outcome record per event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from hookbird.context import Context
from hookbird.events import Event
from hookbird.logs import get_logger
from hookbird.metrics import TALLY
from hookbird.routing import Handler
from workers import runtime
from workers.policy import Verdict, classify, short_traceback
from workers.states import HandlerStatus, Status
from workers.store import version_key

log = get_logger("hookbird.worker")

#: Attempts kept in a handler's ``history``: a push retried for days stays small.
HISTORY = 10


class Interrupted(BaseException):
    """The worker's shutdown grace ran out while a handler was running."""


_interrupt = threading.Event()
_in_handler = threading.local()


def request_interrupt() -> None:
    """Called from the worker's grace signal: stop the running handler, if any."""
    _interrupt.set()
    if getattr(_in_handler, "name", None):
        raise Interrupted("shutdown grace period over")


def run_one(
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
        record.update(status=HandlerStatus.INTERRUPTED, at=time.time())
        _remember(record, started)
        raise Interrupted("stopped while running") from None
    except Exception as exc:
        verdict = classify(exc, time.time())
        record.update(
            status=HandlerStatus.FAILED if verdict.kind == Status.RETRYING else HandlerStatus.DEAD,
            error=verdict.reason,
            traceback=short_traceback(exc),
            at=time.time(),
        )
        _remember(record, started)
        return verdict  # logged by the caller, which knows whether it is retried
    finally:
        _in_handler.name = None
        TALLY.handler_seconds(handler.name, time.perf_counter() - started)
    record.update(status=HandlerStatus.OK, error=None, at=time.time())
    record["ms"] = _remember(record, started)
    record.pop("traceback", None)
    return None


def run_many(
    rt: runtime.Runtime,
    events: list[Event],
    handler: Handler,
    records: Mapping[str, dict[str, Any]],
) -> dict[str, Verdict | None]:
    """Run a batch handler once for ``events``; per event id None (handled) or its failure.

    ``records`` (event id → that event's outcome record for the handler) are updated
    as :func:`run_one` updates one. The handler fails every event by raising, or some
    by returning ``{event_id: exception}``. Interrupted by a shutdown: no record is
    touched and :class:`Interrupted` is raised.
    """
    now = time.time()
    ctx = Context(
        event=events[0],
        handler=handler.name,
        settings=rt.settings,
        redis=rt.redis,
        log=log.bind(handler=handler.name, batch=len(events)),
        moneybird_factory=rt.moneybird,
    )
    failed: dict[str, BaseException] = {}
    started = time.perf_counter()
    _in_handler.name = handler.name
    try:
        if _interrupt.is_set():
            raise Interrupted("shutdown grace period over")
        answer = handler.func(list(events), ctx)
        if answer is not None:
            failed = {str(k): _as_exception(v) for k, v in dict(answer).items()}
    except (Interrupted, SystemExit, KeyboardInterrupt):
        raise Interrupted("stopped while running") from None
    except Exception as exc:
        failed = {event.event_id: exc for event in events}
    finally:
        _in_handler.name = None
        TALLY.handler_seconds(handler.name, time.perf_counter() - started)
    unknown = set(failed) - {event.event_id for event in events}
    if unknown:
        log.warning("a batch handler named events not in its batch", handler=handler.name)
    verdicts: dict[str, Verdict | None] = {}
    for event in events:
        record = records[event.event_id]
        record["attempts"] = int(record.get("attempts", 0)) + 1
        record["batch"] = len(events)
        error = failed.get(event.event_id)
        if error is None:
            record.update(status=HandlerStatus.OK, error=None, at=now)
            record["ms"] = _remember(record, started)
            record.pop("traceback", None)
            verdicts[event.event_id] = None
            continue
        verdict = classify(error, now)
        record.update(
            status=HandlerStatus.FAILED if verdict.kind == Status.RETRYING else HandlerStatus.DEAD,
            error=verdict.reason,
            traceback=short_traceback(error),
            at=now,
        )
        if verdict.retry_at is not None:
            record["retry_at"] = verdict.retry_at
        _remember(record, started)
        verdicts[event.event_id] = verdict
    return verdicts


def _as_exception(value: object) -> BaseException:
    if isinstance(value, BaseException):
        return value
    return TypeError(f"a batch handler answered {value!r} for an event, not an exception")


def _remember(record: dict[str, Any], started: float) -> float:
    """Add the attempt that just ended to ``record["history"]``; returns its milliseconds."""
    ms = round((time.perf_counter() - started) * 1000, 1)
    attempt = {"at": record["at"], "ms": ms, "status": record["status"]}
    if record.get("error"):
        attempt["error"] = record["error"]
    history = [*record.get("history", ()), attempt]
    record["history"] = history[-HISTORY:]
    return ms


def is_stale(rt: runtime.Runtime, handler: Handler, event: Event, suffix: str | None) -> str | None:
    if not handler.latest_only or event.version is None or suffix is None:
        return None
    seen = rt.redis.get(version_key(handler.name, suffix))
    if seen is not None and int(seen) > event.version:
        return f"version {event.version} is older than {int(seen)}, already handled"
    return None
