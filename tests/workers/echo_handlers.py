"""Handlers for the echo-suppression test: a two-way sync that writes back to Moneybird.

``two_way`` (``skip_own_writes=True``) renames a changed contact in Moneybird once; a
plain ``watcher`` on the same event sees every push. Each appends a JSON record to
``test:echo:<name>``: the entity id, version and ``event.own_write``.
"""

from __future__ import annotations

import json

from hookbird import Context, Event, Router

router = Router()


def _note(name: str, event: Event, ctx: Context) -> None:
    ctx.redis.rpush(
        f"test:echo:{name}",
        json.dumps({"id": event.entity_id, "version": event.version, "own": event.own_write}),
    )


@router.on("contact_changed", skip_own_writes=True)
def two_way(event: Event, ctx: Context) -> None:
    _note("two_way", event, ctx)
    if event.entity.get("company_name") != "Synced":
        ctx.moneybird.contacts.update(event.entity_id or "", {"company_name": "Synced"})


@router.on("contact_changed")
def watcher(event: Event, ctx: Context) -> None:
    _note("watcher", event, ctx)
