"""Versions seen: the last ``version`` of each Moneybird entity hookbird has seen.

Reconciliation (``hookbird reconcile``) compares what Moneybird's synchronization
endpoints list, ``[{id, version}]`` per resource, with what hookbird already saw, to
find what it missed: new records, changed ones, and ones that disappeared. Pushes
(recorded by the worker that handles them), replays and reconciliations all write here.

One Redis hash per administration and entity type, ``hookbird:seen:<adm>:<EntityType>``,
one field per entity: its id → its version, with an ``r`` appended when that version
was delivered to the handlers by a reconciliation rather than by a push (a push of
that very version arriving later is then not handled again: see :data:`CLAIM`). The
hash has no TTL: it holds one field per entity Moneybird still has (about 90 bytes
each, see docs/reconciliation.md), and a destroyed entity's field is deleted.

Own writes (echo suppression): a handler's write through ``ctx.moneybird`` notes the
entity and the version Moneybird answered with (``hookbird:own:<adm>:<id>``, kept
``HOOKBIRD_DEDUP_TTL``, :func:`own_write_recorder`); the push Moneybird sends back about
that version is marked ``event.own_write``, so a route with ``skip_own_writes=True``
does not take a two-way sync's own change back in.

Which resources have synchronization endpoints, the entity type their records carry
in pushes, and the official event names a reconciliation uses for a new, a changed
and a vanished record are in :data:`RESOURCES`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from hookbird import keys


@dataclass(frozen=True)
class Synced:
    """A resource with ``GET/POST /{administration_id}/<path>/synchronization``."""

    path: str
    entity_type: str
    created: str
    changed: str
    destroyed: str
    #: the list's default period is ``this_year`` (any filter replaces that default)
    dated: bool = False
    #: the list hides archived records unless ``include_archived=true`` is passed
    archivable: bool = False

    @property
    def actions(self) -> tuple[str, str, str]:
        return (self.created, self.changed, self.destroyed)


def _document(kind: str) -> Synced:
    # Moneybird pushes every kind of document as entity type Document; a new one is
    # announced as document_saved (there is no document_created).
    return Synced(
        f"documents/{kind}",
        "Document",
        "document_saved",
        "document_updated",
        "document_destroyed",
        dated=True,
    )


#: Every resource reconciliation knows, by API path, in the order it runs them.
RESOURCES: dict[str, Synced] = {
    s.path: s
    for s in (
        Synced(
            "contacts",
            "Contact",
            "contact_created",
            "contact_changed",
            "contact_destroyed",
            archivable=True,
        ),
        Synced(
            "sales_invoices",
            "SalesInvoice",
            "sales_invoice_created",
            "sales_invoice_updated",
            "sales_invoice_destroyed",
            dated=True,
        ),
        Synced(
            "external_sales_invoices",
            "ExternalSalesInvoice",
            "external_sales_invoice_created",
            "external_sales_invoice_updated",
            "external_sales_invoice_destroyed",
            dated=True,
        ),
        Synced(
            "estimates",
            "Estimate",
            "estimate_created",
            "estimate_updated",
            "estimate_destroyed",
            dated=True,
        ),
        _document("purchase_invoices"),
        _document("receipts"),
        _document("typeless_documents"),
        _document("general_documents"),
        _document("general_journal_documents"),
    )
}

#: Entity types that have a synchronizable resource: only their versions are kept.
ENTITY_TYPES = frozenset(s.entity_type for s in RESOURCES.values())


class Source(StrEnum):
    """Where an event came from, as ``Event.source`` says."""

    PUSH = "push"
    RECONCILE = "reconcile"
    #: a reconciliation's ``--backfill``: every record, whatever was seen before
    BACKFILL = "backfill"


class Verdict(StrEnum):
    RUN = "run"
    #: a push or a reconciliation already delivered this version (or a newer one)
    SKIP = "skip"


def seen_key(administration_id: str, entity_type: str) -> str:
    return f"{keys.PREFIX}seen:{administration_id}:{entity_type}"


def own_key(administration_id: str, entity_id: str) -> str:
    """The version hookbird's own last write of an entity produced (Moneybird ids are unique
    across types, so the type is not needed)."""
    return f"{keys.PREFIX}own:{administration_id}:{entity_id}"


def own_write_recorder(client: redis.Redis, ttl: int) -> Any:
    """A ``Client.on_write`` that notes each record written with its new version."""

    def record(administration_id: str | None, found: dict[str, Any]) -> None:
        version, entity_id = found.get("version"), found.get("id")
        if administration_id and entity_id and isinstance(version, int | str):
            # the write happened: if Redis fails now, only its echo goes unmarked
            with contextlib.suppress(redis.RedisError):
                client.set(own_key(administration_id, str(entity_id)), str(version), ex=ttl)

    return record


def parse(value: Any) -> tuple[int, bool] | None:
    """A stored field as ``(version, delivered by a reconciliation)``; None if absent."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return int(text.rstrip("r")), text.endswith("r")


#: Run once per event, on its first run (a retry finds the verdict in the event's
#: outcome record). KEYS: the seen hash, the event's outcome record, the entity's own
#: write key. ARGV: entity id, version ('' when the push carries none), source, '1'
#: when the action destroys the entity, the outcome record's TTL. Returns the verdict,
#: the field as it was, and 1 when the version is one hookbird's own write produced.
#:
#: - destroyed: the field goes; a reconciliation's "gone" event whose entity is not in
#:   the hash any more (a push about its destruction was handled) is skipped;
#: - reconcile: skipped when a version at least as new was seen, else recorded with r;
#: - push: skipped when a reconciliation delivered this very version (the late push is
#:   the same change), else recorded when newer;
#: - backfill, and a replay (source 'replay'): always run, recorded when newer.
CLAIM = """
local own = 0
if ARGV[2] ~= '' and redis.call('GET', KEYS[3]) == ARGV[2] then own = 1 end
local state = redis.call('HGET', KEYS[2], 'seen')
if state then return {state, false, own} end
local id, version, source, destroyed = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local was = redis.call('HGET', KEYS[1], id)
local seen, by_reconcile = nil, false
if was then
  seen = tonumber(string.match(was, '^%-?%d+'))
  by_reconcile = string.sub(was, -1) == 'r'
end
local verdict = 'run'
if destroyed then
  if source == 'reconcile' and not was then verdict = 'skip' end
  redis.call('HDEL', KEYS[1], id)
elseif version then
  local mark = ''
  if source == 'reconcile' or source == 'backfill' then mark = 'r' end
  if source == 'reconcile' and seen and seen >= version then
    verdict = 'skip'
  elseif source == 'push' and by_reconcile and seen == version then
    verdict = 'skip'
  elseif not seen or version > seen then
    redis.call('HSET', KEYS[1], id, ARGV[2] .. mark)
  end
end
redis.call('HSET', KEYS[2], 'seen', verdict)
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {verdict, was, own}
"""


class Versions:
    """The versions-seen hashes of one Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._claim = client.register_script(CLAIM)

    def claim(
        self,
        *,
        administration_id: str,
        entity_type: str,
        entity_id: str,
        version: int | None,
        source: str,
        destroyed: bool,
        state_key: str,
        ttl: int,
    ) -> tuple[Verdict, bool]:
        """Record an event's version as seen; whether its handlers should run (see CLAIM),
        and whether the version is one hookbird's own write produced."""
        verdict, _was, own = self._claim(
            keys=[
                seen_key(administration_id, entity_type),
                state_key,
                own_key(administration_id, entity_id),
            ],
            args=[entity_id, "" if version is None else version, source, int(destroyed), ttl],
        )
        return Verdict(verdict.decode() if isinstance(verdict, bytes) else verdict), own == 1

    def own_write(self, administration_id: str, entity_id: str, version: int) -> bool:
        """Whether ``version`` of the entity is one hookbird's own write produced."""
        found = self.redis.get(own_key(administration_id, entity_id))
        return found is not None and found == str(version).encode()

    def all(self, administration_id: str, entity_type: str) -> dict[str, tuple[int, bool]]:
        """Every entity of the type seen in the administration: id → (version, by reconcile)."""
        found = self.redis.hgetall(seen_key(administration_id, entity_type))
        parsed = {
            (k.decode() if isinstance(k, bytes) else str(k)): parse(v) for k, v in found.items()
        }
        return {k: v for k, v in parsed.items() if v is not None}

    def record_baseline(
        self, administration_id: str, entity_type: str, listed: dict[str, int]
    ) -> None:
        """Take Moneybird's listing as seen (a first reconciliation): newer versions win,
        and nothing is marked as delivered."""
        key = seen_key(administration_id, entity_type)
        known = self.all(administration_id, entity_type)
        newer = {eid: str(v) for eid, v in listed.items() if eid not in known or v > known[eid][0]}
        items = list(newer.items())
        for start in range(0, len(items), 1000):
            self.redis.hset(key, mapping=dict(items[start : start + 1000]))
