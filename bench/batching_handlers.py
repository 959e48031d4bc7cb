"""The batching benchmark's handler: refresh each changed contact from Moneybird.

Loaded by the workers with ``HOOKBIRD_HANDLERS=bench.batching_handlers``. With
``BENCH_BATCH=N`` (and ``BENCH_WINDOW`` seconds) it is a batch handler that fetches up
to N contacts with one ``fetch_many`` (Moneybird's synchronization POST); without,
one ``contacts.get`` per push. Either way it counts the contacts it refreshed in
``bench:refreshed``.
"""

from __future__ import annotations

import os

from hookbird import Context, Event, Router

router = Router()

BATCH = int(os.environ.get("BENCH_BATCH") or 0)
WINDOW = float(os.environ.get("BENCH_WINDOW") or 2.0)

if BATCH:

    @router.on("contact_changed", batch=BATCH, window=WINDOW)
    def refresh_contacts(events: list[Event], ctx: Context) -> None:
        """One synchronization POST for the whole batch."""
        ids = [e.entity_id for e in events if e.entity_id]
        fresh = ctx.moneybird.contacts.fetch_many(ids)
        ctx.redis.incrby("bench:refreshed", len(fresh))

else:

    @router.on("contact_changed")
    def refresh_contact(event: Event, ctx: Context) -> None:
        """One GET per push."""
        if event.entity_id:
            ctx.moneybird.contacts.get(event.entity_id)
            ctx.redis.incr("bench:refreshed")
