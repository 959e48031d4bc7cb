"""Batch handlers: one call for up to N pushes, so a handler refreshes N entities with one
Moneybird request (``fetch_many``, ``sync()``) instead of N GETs; outcomes stay per push.

``router.on("contact_changed", batch=100, window=2.0)`` routes pushes to a function that
takes ``(events, ctx)``. Why it is built this way: every guarantee of a push (its own
retries and dead letter, its entity's order, ``latest_only``, its record in ``hookbird
events show``) already lives with the push's own job, so the batch only *borrows* the
pushes for one handler call and gives each job back its own outcome to conclude from.

How a push reaches a batch handler (each step one script call, atomic in Redis)::

    job of push P runs its other handlers as usual, then, for batch handler B:
      JOIN   P goes into hookbird:batch:<B>:<administration> (sorted set, score: when
             it joined). Full (N) or its oldest entry older than the window: this run
             is the leader and takes the N oldest entries, each claimed in
             hookbird:batch-claims:<B>:<administration> (entry -> leader's run token and
             the leader's entity-lock key). Otherwise P parks (an RQ Retry when the
             window ends), keeping its place at the head of its entity's line.
      lead   the leader loads the claimed pushes, calls B(events, ctx) once, and
      RECORD writes each push's outcome into that push's record (field ``batch:<B>``
             of hookbird:state:<id>) and drops its claim, only while the claim is still
             its own; the parked jobs are woken (taken out of RQ's scheduled registry).
    job of P runs again: finds ``batch:<B>``, moves it into its ``handlers`` record and
      concludes through the normal path (workers.policy.decide): handled, retried
      after its backoff (next time it joins a batch again) or dead-lettered, alone.

Guarantees, and what keeps them:

- Nothing lost when the leader dies (kill -9, OOM): a claim is valid only while the
  leader's entity lock holds the leader's run token. Recovery (workers.recovery, or
  the fork worker's child-died path) releases that lock, so the next JOIN of any push
  in that batch puts the orphaned entries back, due at once. The parked jobs re-check
  every :data:`CLAIMED_RECHECK` seconds while claimed, and the leader's own job is run
  again by recovery, so a JOIN comes.
- Nothing run twice beyond the one-event path: an outcome is written only under a
  live claim, and a push's job takes it exactly once (consuming it in the same finish
  script that writes the push's record). A leader killed after calling the handler
  but before RECORD has the handler run again for those pushes: the same at-least-once
  a one-event handler killed mid-run has.
- Per-entity order and one entity per batch: a push waiting for its batch keeps its
  place at the head of its entity's line (``Done.AGAIN``), so later pushes for the
  entity wait; a batch never holds two pushes about one entity, and the next push
  for it runs only after this one concluded. ``latest_only`` and ``skip_own_writes``
  skip a push before it joins, as for one-event handlers.
- Other handlers of the push run in its first run as usual; a batch handler joins only
  when none of them is left to retry (a push whose other handler fails joins on its
  retry), so the batch never waits on them and they never wait on the batch.
- A push that names no entity (it holds no entity lock to vouch for a claim) runs the
  batch handler alone, as a batch of one.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import redis

from hookbird import keys
from hookbird.events import Event, UnreadableEvent, event_from_stored
from hookbird.logs import get_logger
from hookbird.routing import Handler
from workers import runtime
from workers.policy import Verdict
from workers.running import run_many
from workers.states import HandlerStatus, Status
from workers.store import (
    WAITING_STATUSES,
    entity_set_key,
    state_key,
    stored_push,
    text,
    wake_key,
)

log = get_logger("hookbird.worker")

#: Seconds a push whose batch is running re-checks on its own (the leader wakes it sooner).
CLAIMED_RECHECK = 10


def batch_key(handler: str, administration_id: str) -> str:
    return f"{keys.PREFIX}batch:{handler}:{administration_id}"


def claims_key(handler: str, administration_id: str) -> str:
    return f"{keys.PREFIX}batch-claims:{handler}:{administration_id}"


def outcome_field(handler: str) -> str:
    """The field of ``hookbird:state:<id>`` where a leader leaves the push's outcome."""
    return f"batch:{handler}"


JOIN = """
local queue, claims = KEYS[1], KEYS[2]
local me, now, window, size = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local token, lock, ttl = ARGV[5], ARGV[6], ARGV[7]
-- claims whose leader is gone (its entity lock no longer holds its run token): back, due now
local flat = redis.call('HGETALL', claims)
for i = 1, #flat, 2 do
  local holder, held = string.match(flat[i + 1], '^(.-)|(.*)$')
  if not holder or redis.call('GET', held) ~= holder then
    redis.call('HDEL', claims, flat[i])
    redis.call('ZADD', queue, 'NX', now - window, flat[i])
  end
end
if redis.call('HEXISTS', claims, me) == 1 then return {'running', ''} end
redis.call('ZADD', queue, 'NX', now, me)
redis.call('EXPIRE', queue, ttl)
local oldest = tonumber(redis.call('ZRANGE', queue, 0, 0, 'WITHSCORES')[2])
if redis.call('ZCARD', queue) < size and oldest + window > now then
  return {'wait', tostring(oldest + window - now)}
end
local taken = redis.call('ZPOPMIN', queue, size)
local ids = {}
for i = 1, #taken, 2 do
  ids[#ids + 1] = taken[i]
  redis.call('HSET', claims, taken[i], token .. '|' .. lock)
end
redis.call('EXPIRE', claims, ttl)
return {'lead', ids}
"""

RECORD = """
local claims, scheduled, queue = KEYS[1], KEYS[2], KEYS[3]
local token, field, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local state_prefix, wake_prefix, leader, back = ARGV[4], ARGV[5], ARGV[6], ARGV[7] == '1'
local woken = {}
for i = 8, #ARGV, 2 do
  local id, outcome = ARGV[i], ARGV[i + 1]
  local claim = redis.call('HGET', claims, id)
  if claim and string.sub(claim, 1, #token + 1) == token .. '|' then
    redis.call('HDEL', claims, id)
    if back then
      redis.call('ZADD', queue, 'NX', 0, id)
    elseif outcome ~= '' then
      redis.call('HSET', state_prefix .. id, field, outcome)
      if id ~= leader then
        local due = redis.call('ZSCORE', scheduled, id)
        if not due then
          redis.call('SET', wake_prefix .. id, '1', 'PX', 60000)
        elseif tonumber(due) > now + 0.25 then
          redis.call('ZREM', scheduled, id)
          woken[#woken + 1] = id
        end
      end
    end
  end
end
return woken
"""


@dataclass(frozen=True)
class Joined:
    """What :meth:`Batches.join` answered: ``verdict`` lead, wait or running."""

    verdict: str
    #: lead: the claimed event ids
    ids: tuple[str, ...] = ()
    #: wait: seconds until the batch's window ends
    wait: float = 0.0

    def park_for(self) -> int:
        """Whole seconds to park (RQ schedules in seconds)."""
        if self.verdict == "running":
            return CLAIMED_RECHECK
        return max(1, math.ceil(self.wait))


class Batches:
    """The two batch scripts, bound to one Redis connection and one queue's scheduled registry."""

    def __init__(self, client: redis.Redis, *, scheduled_key: str) -> None:
        self.redis = client
        self.scheduled_key = scheduled_key
        self._join = client.register_script(JOIN)
        self._record = client.register_script(RECORD)

    def join(
        self,
        handler: Handler,
        administration_id: str,
        event_id: str,
        *,
        token: str,
        lock_key: str,
        now: float,
        ttl: int,
    ) -> Joined:
        script_keys = [
            batch_key(handler.name, administration_id),
            claims_key(handler.name, administration_id),
        ]
        args: list[Any] = [event_id, repr(now), handler.window, handler.batch, token, lock_key, ttl]
        verdict, value = self._join(keys=script_keys, args=args)
        verdict = text(verdict)
        if verdict == "lead":
            return Joined(verdict, ids=tuple(text(v) for v in value))
        if verdict == "wait":
            return Joined(verdict, wait=float(text(value)))
        return Joined(verdict)

    def record(
        self,
        handler: Handler,
        administration_id: str,
        *,
        token: str,
        leader: str,
        outcomes: dict[str, str],
        now: float,
        back: bool = False,
    ) -> list[str]:
        """Write each claimed push's outcome ('' drops the claim only); ``back``: put the
        claimed entries back in line instead. Returns the parked pushes to queue now."""
        script_keys = [
            claims_key(handler.name, administration_id),
            self.scheduled_key,
            batch_key(handler.name, administration_id),
        ]
        args: list[Any] = [
            token,
            outcome_field(handler.name),
            repr(now),
            state_key(""),
            wake_key(""),
            leader,
            "1" if back else "0",
        ]
        for event_id, outcome in outcomes.items():
            args += [event_id, outcome]
        woken = self._record(keys=script_keys, args=args)
        return [text(w) for w in woken]


def superseded(rt: runtime.Runtime, handler: Handler, event: Event, suffix: str) -> str | None:
    """Why a ``latest_only`` batch handler skips this push at once: a newer version of the
    entity is already waiting in the entity's line behind it, and reaches the handler too.

    The push then concludes now instead of waiting out a window, and the next one in
    line gets its turn: N pushes about one contact cost one place in one batch.
    """
    if event.version is None:
        return None
    members = [text(m) for m in rt.redis.zrange(entity_set_key(suffix), 0, -1)]
    for other in members:
        if other == event.event_id:
            continue
        if text(rt.redis.hget(keys.rq_job_key(other), "status") or "") not in WAITING_STATUSES:
            continue
        try:
            later = event_from_stored(other, stored_push(rt.redis, other))
        except (UnreadableEvent, ValueError):
            continue
        if later.version is None or later.version <= event.version:
            continue
        reached = rt.router.handlers_for(later.action, later.entity_type)
        if any(h.name == handler.name for h in reached):
            return f"version {later.version} of the entity is waiting behind it (push {other})"
    return None


def taken_outcome(state: dict[str, str], handler: Handler) -> dict[str, Any] | None:
    """The outcome a leader left for this push and ``handler``, not yet concluded from."""
    raw = state.get(outcome_field(handler.name))
    if not raw:
        return None
    found: dict[str, Any] = json.loads(raw)
    return found


def verdict_of(record: dict[str, Any]) -> Verdict | None:
    """The failure an outcome record names (None: handled); ``retry_at`` leaves the record."""
    retry_at = record.pop("retry_at", None)
    status = record.get("status")
    if status == HandlerStatus.OK:
        return None
    kind = Status.DEAD if status == HandlerStatus.DEAD else Status.RETRYING
    return Verdict(kind, str(record.get("error") or "failed in a batch"), retry_at)


def lead(
    rt: runtime.Runtime,
    batches: Batches,
    handler: Handler,
    administration_id: str,
    ids: tuple[str, ...],
    *,
    token: str,
    leader: str,
) -> list[str]:
    """Run ``handler`` once for the claimed pushes ``ids`` and record each one's outcome.

    Pushes that are gone or already concluded are dropped from the batch. Returns the
    parked pushes to queue now. Interrupted by a shutdown: the entries go back in line.
    """
    events: list[Event] = []
    records: dict[str, dict[str, Any]] = {}
    dropped: dict[str, str] = {}
    for event_id in ids:
        state = {text(k): text(v) for k, v in rt.redis.hgetall(state_key(event_id)).items()}
        stored = stored_push(rt.redis, event_id)
        if not stored or state.get("status") in (Status.SUCCEEDED, Status.DEAD):
            dropped[event_id] = ""
            continue
        try:
            event = event_from_stored(event_id, stored)
        except (UnreadableEvent, ValueError):
            dropped[event_id] = ""
            continue
        handlers = json.loads(state.get("handlers") or "{}")
        records[event_id] = dict(handlers.get(handler.name, {}))
        events.append(event)
    now = time.time()
    if dropped:
        batches.record(
            handler, administration_id, token=token, leader=leader, outcomes=dropped, now=now
        )
    if not events:
        return []
    try:
        verdicts = run_many(rt, events, handler, records)
    except BaseException:
        batches.record(
            handler,
            administration_id,
            token=token,
            leader=leader,
            outcomes={event.event_id: "" for event in events},
            now=time.time(),
            back=True,
        )
        raise
    failed = sum(1 for v in verdicts.values() if v is not None)
    log.info("batch handled", handler=handler.name, events=len(events), failed=failed)
    outcomes = {event_id: json.dumps(record) for event_id, record in records.items()}
    return batches.record(
        handler, administration_id, token=token, leader=leader, outcomes=outcomes, now=time.time()
    )
