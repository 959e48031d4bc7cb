"""Per-event outcome records and per-entity turn-taking in Redis: two scripts, one round trip each.

Keys (TTL in brackets; "retention" is ``HOOKBIRD_EVENT_RETENTION``):

- ``hookbird:state:<event_id>``: hash: status, attempts, crashes, parks, last error,
  ``handlers`` (JSON per handler) [retention; a dead push: the job's failure_ttl]
- ``hookbird:entity:<adm>:<type>:<id>``: sorted set of the entity's unfinished
  pushes, event id → received-at [retention, renewed by every push]
- ``hookbird:entity-lock:<adm>:<type>:<id>``: ``<event_id>:<run token>`` while a push
  for the entity runs [job timeout + 60 s]
- ``hookbird:version:<handler>:<adm>:<type>:<id>``: highest entity version a
  ``latest_only`` handler has handled [retention]

Order per entity: :data:`BEGIN` puts the push in its entity's set (score: receipt
time) and lets it run only when it is the oldest unfinished push there and no other
push holds the entity's lock. A push whose worker dequeued it a moment before ours
but has not reached this script yet is still in RQ's intermediate list or started
registry: the script looks there too, so the older push is never overtaken. A push
stays in the set while it waits for a retry (later pushes for the entity wait too)
and leaves when it succeeds or is dead-lettered. Entries whose RQ job is gone or
finished are dropped, so a lost record cannot block an entity for ever.
:data:`FINISH` records the outcome, releases the lock and hands back the next
waiting push for the entity so the caller can put it at the front of the queue. If
that push is still on its way into RQ's scheduled registry (its worker has just
decided to park it), ``hookbird:wake:<id>`` is set instead, and that worker requeues
it as soon as RQ has scheduled it (``HookbirdMixin.handle_job_retry``): no wake-up
is lost to the race.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis

from hookbird import keys
from hookbird.stored import unpack_push
from workers.states import BeginVerdict, Done

WAITING_STATUSES = ("queued", "started", "scheduled", "deferred")

BEGIN = """
local event_key, state_key, set_key, lock_key, wip_key, mid_key = unpack(KEYS)
local me, token, lock_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- A stored push is one string (hookbird/stored.py); receivers before 2026-11-22 wrote a
-- hash of fields, read here too so pushes queued across an upgrade are handled.
local kind = redis.call('TYPE', event_key)['ok']
if kind == 'none' then return {'expired', '', {}} end
local stored
if kind == 'hash' then stored = redis.call('HGETALL', event_key)
else stored = redis.call('GET', event_key) end
local state = redis.call('HGETALL', state_key)
if set_key == '' then return {'go', stored, state} end
local adm, etype, eid = ARGV[4], ARGV[5], ARGV[6]
-- the fields the receiver stored with a push: the JSON line before its raw body
local function header(key)
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local f = redis.call('HMGET', key, 'administration_id', 'entity_type', 'entity_id',
      'received_at')
    return {administration_id = f[1], entity_type = f[2], entity_id = f[3],
      received_at = f[4]}
  end
  local value = redis.call('GET', key)
  local newline = value and string.find(value, '\\n', 1, true)
  if not newline then return {} end
  local ok, fields = pcall(cjson.decode, string.sub(value, 1, newline - 1))
  if ok and type(fields) == 'table' then return fields end
  return {}
end
redis.call('ZADD', set_key, 'NX', tonumber(header(event_key).received_at) or 0, me)
redis.call('EXPIRE', set_key, ARGV[7])
-- pushes dequeued before this one that have not reached this script yet
local candidates = redis.call('LRANGE', mid_key, 0, -1)
for _, entry in ipairs(redis.call('ZRANGE', wip_key, 0, -1)) do
  table.insert(candidates, string.match(entry, '^([^:]+)'))
end
for _, other in ipairs(candidates) do
  if other ~= me and other < me then
    local f = header('hookbird:event:' .. other)
    -- (one that just finished may still sit in the started registry a moment longer)
    local done = redis.call('HGET', 'hookbird:state:' .. other, 'status')
    if f.administration_id == adm and f.entity_type == etype and f.entity_id == eid
        and done ~= 'succeeded' and done ~= 'dead' then
      redis.call('ZADD', set_key, 'NX', tonumber(f.received_at) or 0, other)
    end
  end
end
for _ = 1, 50 do
  local head = redis.call('ZRANGE', set_key, 0, 0)[1]
  if head == me then break end
  local status = redis.call('HGET', 'rq:job:' .. head, 'status')
  if status == 'queued' or status == 'started' or status == 'scheduled'
      or status == 'deferred' then
    return {'wait', stored, state}
  end
  redis.call('ZREM', set_key, head)
end
-- held even by an earlier run of this same push (a second copy of its job): wait
if redis.call('GET', lock_key) then
  return {'wait', stored, state}
end
redis.call('SET', lock_key, token, 'PX', lock_ms)
redis.call('DEL', 'hookbird:wake:' .. me)  -- its turn is now; a later retry must not be hurried
return {'go', stored, state}
"""

FINISH = """
local state_key, set_key, lock_key, job_key, scheduled_key, event_key = unpack(KEYS)
local me, token, done, ttl, description, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local meta = ARGV[7]
for i = 8, #ARGV, 2 do redis.call('HSET', state_key, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', state_key, ttl)
if done == 'dead' then redis.call('EXPIRE', event_key, ttl) end
if description ~= '' and redis.call('EXISTS', job_key) == 1 then
  redis.call('HSET', job_key, 'description', description)
  -- the receiver writes no meta (see receiver/enqueue.py); rq-dashboard shows this
  if meta ~= '' then redis.call('HSET', job_key, 'meta', meta) end
end
if set_key == '' then return false end
if done == 'park' then
  -- the push before this one may have finished since BEGIN: then do not wait at all
  local first = redis.call('ZRANGE', set_key, 0, 0)[1]
  if first == me and not redis.call('GET', lock_key) then return me end
  return false
end
if redis.call('GET', lock_key) == token then redis.call('DEL', lock_key) end
if done ~= 'no' then redis.call('ZREM', set_key, me) end
local head
for _ = 1, 50 do
  head = redis.call('ZRANGE', set_key, 0, 0)[1]
  if not head or head == me then return false end
  local status = redis.call('HGET', 'rq:job:' .. head, 'status')
  if status == 'queued' or status == 'started' or status == 'scheduled'
      or status == 'deferred' then break end
  redis.call('ZREM', set_key, head)  -- finished or gone: not a push to wait for
end
local due = redis.call('ZSCORE', scheduled_key, head)
if not due then
  -- on its way to being parked: its worker moves it to the queue once RQ has scheduled it
  redis.call('SET', 'hookbird:wake:' .. head, '1', 'PX', 60000)
  return false
end
-- wake it only while it is not due yet, so the scheduler is not also enqueueing it
if tonumber(due) > tonumber(now) + 0.25 then
  redis.call('ZREM', scheduled_key, head)
  return head
end
return false
"""


def wake_key(event_id: str) -> str:
    """Set when a push's turn came while it was being parked (see ``FINISH``)."""
    return f"{keys.PREFIX}wake:{event_id}"


def state_key(event_id: str) -> str:
    return f"{keys.PREFIX}state:{event_id}"


def entity_suffix(administration_id: str, entity_type: str, entity_id: str) -> str:
    return f"{administration_id}:{entity_type}:{entity_id}"


def entity_set_key(suffix: str) -> str:
    return f"{keys.PREFIX}entity:{suffix}"


def entity_lock_key(suffix: str) -> str:
    return f"{keys.PREFIX}entity-lock:{suffix}"


def version_key(handler: str, suffix: str) -> str:
    return f"{keys.PREFIX}version:{handler}:{suffix}"


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def stored_fields(connection: redis.Redis, event_id: str, value: Any) -> dict[str, Any]:
    """The stored push from GET's reply: its fields and ``body``; ``{}`` when it expired.

    Receivers before 2026-11-22 stored a push as a hash of fields: GET answers those
    with WRONGTYPE, and the hash is read instead.
    """
    if isinstance(value, redis.ResponseError):
        return {text(k): v for k, v in connection.hgetall(keys.event_key(event_id)).items()}
    return unpack_push(value)


def stored_push(connection: redis.Redis, event_id: str) -> dict[str, Any]:
    """The stored push's fields and ``body``; ``{}`` when it expired."""
    try:
        value: Any = connection.get(keys.event_key(event_id))
    except redis.ResponseError as exc:
        value = exc
    return stored_fields(connection, event_id, value)


def pairs(flat: list[Any]) -> dict[str, Any]:
    """A flat ``[k1, v1, k2, v2…]`` script reply as a dict with text keys."""
    return {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


@dataclass(frozen=True)
class Begun:
    """What :meth:`Store.begin` found: may the push run now, its stored push and record."""

    verdict: BeginVerdict
    stored: dict[str, Any]
    state: dict[str, str]


class Store:
    """The two scripts, bound to one Redis connection and one queue's RQ keys."""

    def __init__(self, client: redis.Redis, *, wip_key: str, mid_key: str, scheduled_key: str):
        self.redis = client
        self.wip_key = wip_key
        self.mid_key = mid_key
        self.scheduled_key = scheduled_key
        self._begin = client.register_script(BEGIN)
        self._finish = client.register_script(FINISH)

    def begin(
        self,
        event_id: str,
        token: str,
        lock_ttl: float,
        entity: tuple[str, str, str] | None,
        retention: int,
    ) -> Begun:
        suffix = entity_suffix(*entity) if entity else None
        script_keys = [
            keys.event_key(event_id),
            state_key(event_id),
            entity_set_key(suffix) if suffix else "",
            entity_lock_key(suffix) if suffix else "",
            self.wip_key,
            self.mid_key,
        ]
        args: list[Any] = [
            event_id,
            token,
            int(lock_ttl * 1000),
            *(entity or ("", "", "")),
            retention,
        ]
        verdict, stored, state = self._begin(keys=script_keys, args=args)
        return Begun(
            BeginVerdict(text(verdict)),
            pairs(stored) if isinstance(stored, list) else unpack_push(stored or None),
            {k: text(v) for k, v in pairs(state).items()},
        )

    def finish(
        self,
        event_id: str,
        token: str,
        *,
        entity: tuple[str, str, str] | None,
        done: Done,
        ttl: int,
        description: str,
        meta: bytes = b"",
        now: float,
        fields: Mapping[str, str],
    ) -> str | None:
        """Record the outcome; ``done``: what becomes of the push's place in its entity's line.

        Returns the id of the next waiting push for the entity, taken out of RQ's
        scheduled registry, for the caller to enqueue. With PARKED: this push's own
        id if its turn has come meanwhile (the caller then requeues it at once).
        """
        suffix = entity_suffix(*entity) if entity else None
        script_keys = [
            state_key(event_id),
            entity_set_key(suffix) if suffix else "",
            entity_lock_key(suffix) if suffix else "",
            keys.rq_job_key(event_id),
            self.scheduled_key,
            keys.event_key(event_id),
        ]
        args: list[Any] = [event_id, token, done, ttl, description, repr(now), meta]
        for name, value in fields.items():
            args += [name, value]
        woken = self._finish(keys=script_keys, args=args)
        return text(woken) if woken else None
