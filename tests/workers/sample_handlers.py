"""Handlers for the worker tests, steered through Redis so a separate worker process obeys.

Each handler appends a JSON record of its run to ``test:calls`` (start, end, pid,
attempt). Keys a test may set, per short handler name (``crm``, ``billing``, ``latest``):
``test:fail:<name>`` transient failures left, ``test:dead:<name>`` raise a permanent
error, ``test:sleep:<name>`` seconds to sleep mid-handler, ``test:boom:<name>`` unexpected
exceptions left, ``test:retry_after:<name>``
raise RetryLater(after=…) once; ``test:dead-event:<event_id>`` fails that push for good.
"""

from __future__ import annotations

import json
import os
import time

from hookbird import Context, Event, RetryLater, Router
from hookbird.moneybird.errors import NotFound, ServerError

router = Router()


def _run(name: str, event: Event, ctx: Context) -> None:
    r = ctx.redis
    started = time.time()
    r.rpush(
        "test:started",
        json.dumps({"handler": name, "event_id": event.event_id, "pid": os.getpid()}),
    )
    pause = r.get(f"test:sleep:{name}")
    if pause:
        time.sleep(float(pause))
    if r.get(f"test:dead:{name}") or r.get(f"test:dead-event:{event.event_id}"):
        raise NotFound("contact 42 is gone", status_code=404, method="GET", path="/contacts/42")
    if r.decr(f"test:boom:{name}") >= 0:
        raise KeyError("unexpected")
    if r.decr(f"test:fail:{name}") >= 0:
        raise ServerError("Moneybird answered 503", status_code=503)
    after = r.getdel(f"test:retry_after:{name}")
    if after:
        raise RetryLater("not yet", after=float(after))
    r.rpush(
        "test:calls",
        json.dumps(
            {
                "handler": name,
                "event_id": event.event_id,
                "action": event.action,
                "entity_id": event.entity_id,
                "version": event.version,
                "source": event.source,
                "attempt": event.attempt,
                "key": ctx.idempotency_key,
                "pid": os.getpid(),
                "start": started,
                "end": time.time(),
            }
        ),
    )


@router.on("contact", entity_type="Contact")
def sync_contact(event: Event, ctx: Context) -> None:
    _run("crm", event, ctx)


@router.on("sales_invoice_state_changed_to_paid")
def mark_paid(event: Event, ctx: Context) -> None:
    _run("billing", event, ctx)


@router.on("contact_changed", latest_only=True)
def latest_contact(event: Event, ctx: Context) -> None:
    _run("latest", event, ctx)
