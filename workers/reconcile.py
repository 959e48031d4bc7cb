"""Reconciliation: what Moneybird has that hookbird missed, as events through the normal queue.

Per resource (``hookbird.versions.RESOURCES``): one ``GET …/synchronization`` lists the
``id`` and ``version`` of every record; compared with the versions seen
(:mod:`hookbird.versions`) it gives the new, the changed and the vanished records;
``POST …/synchronization`` fetches the new and changed ones, 100 per call. Each
difference becomes a stored push and an RQ job exactly like one the receiver writes
(``workers.jobs.process_event``, the entity in the job's meta as a replay's is): the
same routers, per-entity order, ``latest_only`` and retries. Its action is an official
event name of the entity type, its entity the record fetched (``{"id": …}`` for a vanished
one), and its stored header says ``source: reconcile``, which the worker turns into
``event.source`` and uses to skip a version a push already delivered.

A resource never reconciled before in an administration gets a baseline instead: its
listing is recorded as seen and nothing is emitted (``hookbird:reconciled:<adm>`` says
when each resource was last reconciled). ``backfill`` emits an event for every record.

Each event has a dedup key made of the administration, entity, version and action, so
running a reconciliation again before the workers have handled the first one's events
enqueues nothing twice; a run cut short (rate budget, Ctrl-C) is simply run again.

What each resource's reconciliation found is counted for ``/metrics``
(``hookbird_reconcile_records_total``, :mod:`hookbird.metrics`) when that resource is
done; whoever runs the reconciler counts the run's outcome
(``hookbird_reconcile_runs_total``) and flushes the counts to Redis.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Job

from hookbird import keys, metrics
from hookbird.jobspec import JOB_FAILURE_TTL, JOB_FUNCTION, JOB_RESULT_TTL, JOB_TIMEOUT
from hookbird.labels import label
from hookbird.logs import get_logger
from hookbird.routing import Router
from hookbird.stored import pack_push
from hookbird.versions import RESOURCES, Source, Synced, Versions

log = get_logger("hookbird.reconcile")

#: Records fetched per ``POST …/synchronization`` (Moneybird's maximum).
FETCH_CHUNK = 100


class ShareSpent(Exception):
    """The reconciliation's share of the rate budget is used up for now; ``retry_at`` is
    when to go on (epoch seconds). What was queued stays queued."""

    def __init__(self, message: str, retry_at: float) -> None:
        super().__init__(message)
        self.retry_at = retry_at


def reconciled_key(administration_id: str) -> str:
    """Hash: resource path → epoch seconds of its last reconciliation in the administration."""
    return f"{keys.PREFIX}reconciled:{administration_id}"


def all_time(today: datetime | None = None) -> str:
    """A ``period`` that covers every record: 1 January 1900 to the end of next year.

    The invoice, estimate and document lists default to ``period:this_year``, and any
    filter replaces the defaults entirely: without an explicit period a reconciliation
    in January would not see December's invoices, and would take every one of last
    year's for gone. Next year is included for invoices dated ahead.
    """
    year = (today or datetime.now(UTC)).year
    return f"19000101..{year + 1}1231"


def list_params(resource: Synced, today: datetime | None = None) -> dict[str, str]:
    """The query of a resource's synchronization GET that lists every record it has."""
    params: dict[str, str] = {}
    if resource.dated:
        # every key the list needs, since a filter replaces all of the defaults
        params["filter"] = f"period:{all_time(today)},state:all"
    if resource.archivable:
        params["include_archived"] = "true"  # an archived contact has not vanished
    return params


def matched(router: Router) -> list[str]:
    """The resources an installed route can match: the default of ``hookbird reconcile``."""
    return [
        path
        for path, resource in RESOURCES.items()
        if any(router.handlers_for(action, resource.entity_type) for action in resource.actions)
    ]


@dataclass
class Tally:
    """What one resource's reconciliation found and did."""

    resource: str
    seen: int = 0
    new: int = 0
    changed: int = 0
    gone: int = 0
    calls: int = 0
    queued: int = 0
    baseline: bool = False
    note: str = ""


#: Called as records are fetched: (resource, records done, records to do).
Progress = Callable[[str, int, int], None]


class Reconciler:
    """Reconciles one administration; ``moneybird`` is its ``Administration``."""

    def __init__(
        self,
        connection: redis.Redis,
        moneybird: Any,
        *,
        queue: str,
        retention: int,
        dedup_ttl: int,
        progress: Progress | None = None,
        budget_share: float | None = None,
    ) -> None:
        self.redis = connection
        #: the part of the rate budget it may use (None: all of it, as the CLI does)
        self.budget_share = budget_share
        self.moneybird = moneybird
        self.administration_id = str(moneybird.id)
        self.queue = Queue(queue, connection=connection)
        self.retention = retention
        self.dedup_ttl = dedup_ttl
        self.progress = progress
        self.versions = Versions(connection)
        self.run_id = secrets.token_hex(8)

    def _gate(self, path: str) -> None:
        """With a budget share: go on only while more than the rest of the budget is free,
        so that handlers always find at least ``1 - share`` of it; else :class:`ShareSpent`."""
        if self.budget_share is None or self.budget_share >= 1:
            return
        client = self.moneybird.client
        adm = self.administration_id
        if client.global_budget:
            key = "global"
        else:
            key = client.tokens.budget_key(adm, client.tokens.token_for(adm))
        limit = client.budget.config.limit
        free = client.budget.remaining(key, f"/{adm}/{path}")
        if free <= limit * (1 - self.budget_share):
            window = client.budget.config.window
            raise ShareSpent(
                f"reconciliation's share of the rate budget is used ({free} of {limit} free)",
                retry_at=time.time() + window * self.budget_share,
            )

    def _calls(self) -> int:
        return int(getattr(self.moneybird.client, "calls", 0))

    def run(self, paths: Iterable[str], *, backfill: bool = False) -> list[Tally]:
        """Reconcile each resource in turn; a tally per resource (and per entity type
        whose vanished records are counted across several resources, as documents')."""
        wanted = list(dict.fromkeys(paths))
        unknown = [p for p in wanted if p not in RESOURCES]
        if unknown:
            raise ValueError(f"not a synchronizable resource: {', '.join(unknown)}")
        tallies: list[Tally] = []
        listed: dict[str, dict[str, int]] = {}  # entity type → every id listed → version
        covered: dict[str, bool] = {}  # entity type → was every one of its resources listed
        # What was seen is read before Moneybird lists anything: an entity created after the
        # listing and pushed meanwhile must not look vanished.
        snapshots: dict[str, dict[str, tuple[int, bool]]] = {}
        for path in wanted:
            resource = RESOURCES[path]
            known = snapshots.setdefault(
                resource.entity_type,
                self.versions.all(self.administration_id, resource.entity_type),
            )
            tally, listing = self._resource(resource, known, backfill=backfill)
            tallies.append(tally)
            listed.setdefault(resource.entity_type, {}).update(listing)
            covered[resource.entity_type] = covered.get(resource.entity_type, True) and (
                not tally.baseline
            )
        for entity_type, listing in listed.items():
            paths_of_type = [p for p, r in RESOURCES.items() if r.entity_type == entity_type]
            mine = [t for t in tallies if RESOURCES[t.resource].entity_type == entity_type]
            if not covered[entity_type]:
                continue  # a baseline run records, it does not compare
            if any(p not in wanted for p in paths_of_type):
                for tally in mine:
                    tally.note = (
                        "vanished records not checked: reconcile every "
                        f"{entity_type} resource together ({', '.join(paths_of_type)})"
                    )
                continue
            target = mine[0] if len(mine) == 1 else Tally(f"{entity_type} (all resources)")
            if len(mine) != 1:
                tallies.append(target)
            self._gone(RESOURCES[paths_of_type[0]], snapshots[entity_type], listing, target)
            metrics.TALLY.reconcile_records(target.resource, "gone", target.gone)
        return tallies

    def _resource(
        self, resource: Synced, known: dict[str, tuple[int, bool]], *, backfill: bool
    ) -> tuple[Tally, dict[str, int]]:
        tally = Tally(resource.path)
        before = self._calls()
        self._gate(resource.path)
        found = self.moneybird.request(
            "GET", f"{resource.path}/synchronization", params=list_params(resource) or None
        )
        listing = {
            str(item["id"]): _int(item.get("version"))
            for item in found or []
            if isinstance(item, dict) and "id" in item
        }
        tally.seen = len(listing)
        adm = self.administration_id
        first = not self.redis.hexists(reconciled_key(adm), resource.path)
        if first and not backfill:
            tally.baseline = True
            self.versions.record_baseline(adm, resource.entity_type, listing)
        else:
            new = [i for i in listing if i not in known]
            changed = [i for i in listing if i in known and listing[i] > known[i][0]]
            tally.new, tally.changed = len(new), len(changed)
            fetch = list(listing) if backfill else self._not_queued(resource, new, changed, listing)
            fresh = set(new)
            done = 0
            for start in range(0, len(fetch), FETCH_CHUNK):
                chunk = fetch[start : start + FETCH_CHUNK]
                self._gate(resource.path)
                records = self.moneybird.request(
                    "POST", f"{resource.path}/synchronization", json={"ids": chunk}
                )
                for record in records or []:
                    if not isinstance(record, dict) or "id" not in record:
                        continue
                    eid = str(record["id"])
                    action = resource.created if eid in fresh or backfill else resource.changed
                    tally.queued += self.emit(resource, action, record, backfill=backfill)
                done += len(chunk)
                if self.progress is not None:
                    self.progress(resource.path, done, len(fetch))
        self.redis.hset(reconciled_key(adm), resource.path, repr(time.time()))
        tally.calls = self._calls() - before
        metrics.TALLY.reconcile_records(resource.path, "new", tally.new)
        metrics.TALLY.reconcile_records(resource.path, "changed", tally.changed)
        return tally, listing

    def _not_queued(
        self, resource: Synced, new: list[str], changed: list[str], listing: dict[str, int]
    ) -> list[str]:
        """The new and changed ids whose event is not already queued (by an earlier run the
        workers have not caught up with): those need no fetching again."""
        wanted = [(i, resource.created) for i in new] + [(i, resource.changed) for i in changed]
        if not wanted:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for eid, action in wanted:
                pipe.exists(self._dedup_key(resource, eid, listing[eid], action, backfill=False))
            queued = pipe.execute()
        return [eid for (eid, _), done in zip(wanted, queued, strict=True) if not done]

    def _dedup_key(
        self, resource: Synced, eid: str, version: Any, action: str, *, backfill: bool
    ) -> str:
        identity = f"r:{self.administration_id}:{resource.entity_type}:{eid}:{version}:{action}"
        if backfill:
            identity += f":{self.run_id}"  # a backfill delivers everything, every time
        return f"{keys.PREFIX}dedup:{hashlib.sha256(identity.encode()).hexdigest()}"

    def _gone(
        self,
        resource: Synced,
        known: dict[str, tuple[int, bool]],
        listing: dict[str, int],
        tally: Tally,
    ) -> None:
        for eid, (version, _by_reconcile) in known.items():
            if eid in listing:
                continue
            tally.gone += 1
            entity = {"id": eid, "administration_id": self.administration_id}
            tally.queued += self.emit(
                resource, resource.destroyed, entity, backfill=False, gone_version=version
            )

    def emit(
        self,
        resource: Synced,
        action: str,
        entity: dict[str, Any],
        *,
        backfill: bool,
        gone_version: int | None = None,
    ) -> int:
        """Store and enqueue one event; 1, or 0 when the same one is already queued."""
        adm, eid = self.administration_id, str(entity["id"])
        version = entity.get("version") if gone_version is None else gone_version
        dedup = self._dedup_key(resource, eid, version, action, backfill=backfill)
        now = time.time()
        event_id = keys.new_event_id(now)
        if not self.redis.set(dedup, event_id, nx=True, ex=self.dedup_ttl):
            return self._requeue_lost(dedup)
        header = {
            "received_at": f"{now:.6f}",
            "action": action,
            "administration_id": adm,
            "webhook_id": "",
            "entity_type": resource.entity_type,
            "entity_id": eid,
            "dedup_key": dedup,
            "source": Source.RECONCILE.value,
        }
        if backfill:
            header["backfill"] = "1"
        body = {
            "administration_id": adm,
            "webhook_id": None,
            "entity_type": resource.entity_type,
            "entity_id": eid,
            "state": entity.get("state"),
            "action": action,
            "entity": entity,
        }
        stored = pack_push(header, json.dumps(body, ensure_ascii=False).encode("utf-8"))
        with self.redis.pipeline() as pipe:  # one MULTI: the job never runs without its push
            self.queue.enqueue_job(self._job(event_id, header), pipeline=pipe)
            pipe.set(keys.event_key(event_id), stored, ex=self.retention)
            pipe.zadd(keys.EVENTS_INDEX, {event_id: now})
            pipe.execute()
        return 1

    def _job(self, event_id: str, header: dict[str, str]) -> Job:
        meta = {name: header[name] for name in ("administration_id", "entity_type", "entity_id")}
        parts = (header["action"], header["entity_type"], header["entity_id"], "adm")
        summary = " ".join(label(part) for part in (*parts, header["administration_id"]))
        return Job.create(
            JOB_FUNCTION,
            connection=self.redis,
            id=event_id,
            timeout=JOB_TIMEOUT,
            result_ttl=JOB_RESULT_TTL,
            failure_ttl=JOB_FAILURE_TTL,
            description=f"{summary} (reconcile)",
            meta={"event_id": event_id, **meta, "action": header["action"]},
        )

    def _requeue_lost(self, dedup: str) -> int:
        """The event was emitted before: 0, unless the run that stored it stopped before its
        job was queued (its stored push exists without a job), which is queued now."""
        raw = self.redis.get(dedup)
        if raw is None:
            return 0
        event_id = raw.decode() if isinstance(raw, bytes) else str(raw)
        if self.redis.exists(keys.rq_job_key(event_id)):
            return 0
        value = self.redis.get(keys.event_key(event_id))
        if value is None:
            return 0
        head = value.partition(b"\n")[0] if isinstance(value, bytes) else b""
        header = json.loads(head) if head else {}
        if not isinstance(header, dict) or "action" not in header:
            return 0
        self.queue.enqueue_job(self._job(event_id, header))
        return 1


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
