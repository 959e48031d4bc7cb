"""Per-event outcome records and per-entity turn-taking in Redis: two scripts, one round trip each.

The scripts are ``begin.lua`` and ``finish.lua`` next to this module, their key
prefixes and state names filled in when loaded (:func:`load_script`), as
``receiver/enqueue.lua`` is.

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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from rq.job import JobStatus

from hookbird import keys
from hookbird.stored import unpack_push
from workers.states import BeginVerdict, Done, Status

#: RQ job statuses of a push still to run: an earlier one of these holds back its entity.
WAITING_STATUSES = tuple(
    status.value
    for status in (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
)


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


def _lua_string(value: str) -> str:
    """A Lua string literal for a key prefix or a state name (plain words only)."""
    if not re.fullmatch(r"[\w:.-]*", value):
        raise ValueError(f"not a plain word for a Lua script: {value!r}")
    return f"'{value}'"


def _placeholders() -> dict[str, str]:
    """What ``begin.lua`` and ``finish.lua`` name in double braces, as Lua expressions."""
    words = {
        "event_prefix": keys.event_key(""),
        "state_prefix": state_key(""),
        "job_prefix": keys.rq_job_key(""),
        "wake_prefix": wake_key(""),
        "go": BeginVerdict.GO,
        "wait": BeginVerdict.WAIT,
        "expired": BeginVerdict.EXPIRED,
        "succeeded": Status.SUCCEEDED,
        "dead": Status.DEAD,
        "again": Done.AGAIN,
        "done_dead": Done.DEAD,
        "parked": Done.PARKED,
    }
    filled = {name: _lua_string(value) for name, value in words.items()}
    members = ", ".join(f"[{_lua_string(status)}] = true" for status in WAITING_STATUSES)
    filled["rq_unfinished"] = "{" + members + "}"
    return filled


def load_script(name: str) -> str:
    """The text of ``workers/<name>.lua`` with its placeholders filled in."""
    text = resources.files("workers").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    for placeholder, value in _placeholders().items():
        text = text.replace("{{" + placeholder + "}}", value)
    left = re.search(r"\{\{\w+\}\}", text)
    if left:
        raise ValueError(f"{name}.lua: nothing fills in {left[0]}")
    return text


BEGIN = load_script("begin")
FINISH = load_script("finish")


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
