"""Batch handlers for the worker tests, steered through Redis like sample_handlers.

``full`` (contact_created, batch 3, window 60 s) runs only when three pushes wait, so a
test knows the batches it gets; ``quick`` (contact_changed, batch 10, window 1 s, every
version) runs whatever a second collected; ``newest`` (contact_archived) is ``quick``
latest-only, as batch routes are by default. Each call appends its events to
``test:batches`` when it ends and to ``test:batch-started`` when it starts.
``test:sleep:batch`` sleeps mid-call; ``test:fail-event:<event_id>`` transient failures
left for that push, ``test:dead-event:<event_id>`` fails it for good. ``each`` (every
contact push) is a one-event handler.
"""

from __future__ import annotations

import json
import os
import time

from hookbird import Context, Event, Router
from hookbird.moneybird.errors import NotFound, ServerError

router = Router()


def _batch(events: list[Event], ctx: Context) -> dict[str, Exception]:
    r = ctx.redis
    ids = [e.event_id for e in events]
    r.rpush("test:batch-started", json.dumps({"ids": ids, "pid": os.getpid()}))
    pause = r.get("test:sleep:batch")
    if pause:
        time.sleep(float(pause))
    failed: dict[str, Exception] = {}
    for event in events:
        if r.get(f"test:dead-event:{event.event_id}"):
            failed[event.event_id] = NotFound("gone", status_code=404, method="GET", path="/x")
        elif r.decr(f"test:fail-event:{event.event_id}") >= 0:
            failed[event.event_id] = ServerError("Moneybird answered 503", status_code=503)
    entry = {
        "ids": ids,
        "entities": [e.entity_id for e in events],
        "versions": [e.version for e in events],
        "failed": sorted(failed),
        "pid": os.getpid(),
        "end": time.time(),
    }
    r.rpush("test:batches", json.dumps(entry))
    return failed


@router.on("contact_created", batch=3, window=60)
def full(events: list[Event], ctx: Context) -> dict[str, Exception]:
    return _batch(events, ctx)


@router.on("contact_changed", batch=10, window=1, latest_only=False)
def quick(events: list[Event], ctx: Context) -> dict[str, Exception]:
    return _batch(events, ctx)


@router.on("contact_archived", batch=10, window=1)
def newest(events: list[Event], ctx: Context) -> dict[str, Exception]:
    return _batch(events, ctx)


@router.on("contact")
def each(event: Event, ctx: Context) -> None:
    ctx.redis.rpush("test:each", event.event_id)
