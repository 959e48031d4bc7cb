"""Looking at and acting on stored pushes: the event log, replay, the dead letter.

Used by ``hookbird events`` and ``hookbird failed``. Replay re-dispatches a stored
push on purpose, past the dedup key: its outcome record is cleared so every handler
runs again. Requeueing a dead-lettered push keeps what already succeeded (only the
failed handlers run) and gives the failed ones a fresh set of attempts.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry

from hookbird import catalog, keys
from hookbird.jobspec import JOB_FAILURE_TTL, JOB_FUNCTION, JOB_RESULT_TTL, JOB_TIMEOUT
from hookbird.logs import is_sensitive_key
from workers.states import HandlerStatus, Status
from workers.store import state_key, stored_fields, stored_push, text

EVENT_COLUMNS = ("action", "administration_id", "entity_type", "entity_id", "received_at")


#: Handler outcomes a requeue runs again, with fresh attempts.
_FAILED = (HandlerStatus.FAILED, HandlerStatus.DEAD)


class AdminError(Exception):
    """An event cannot be replayed or requeued; the message says why."""


@dataclass(frozen=True)
class EventRow:
    event_id: str
    action: str
    administration_id: str
    entity_type: str
    entity_id: str
    received_at: float
    status: str
    handlers: dict[str, dict[str, Any]] = field(default_factory=dict, compare=False)
    error: str = ""
    #: when a run last ended (0: none has), and when a retry is due (0: none is)
    updated_at: float = 0.0
    next_attempt_at: float = 0.0

    def failed_handlers(self) -> list[str]:
        return [n for n, r in self.handlers.items() if r.get("status") in _FAILED]


def _row(connection: redis.Redis, event_id: str) -> EventRow | None:
    return rows(connection, [event_id])[0]


def rows(connection: redis.Redis, event_ids: list[str]) -> list[EventRow | None]:
    """Each push's row (None where it expired), read in one round trip for them all."""
    with connection.pipeline(transaction=False) as pipe:
        for event_id in event_ids:
            pipe.get(keys.event_key(event_id))
            pipe.hgetall(state_key(event_id))
            pipe.hget(keys.rq_job_key(event_id), "status")
        replies = pipe.execute(raise_on_error=False)
    found: list[EventRow | None] = []
    for at, event_id in enumerate(event_ids):
        value, state, job_status = replies[3 * at : 3 * at + 3]
        found.append(_built(connection, event_id, value, state, job_status))
    return found


def _built(
    connection: redis.Redis, event_id: str, value: Any, state: Any, job_status: Any
) -> EventRow | None:
    for reply in (state, job_status):
        if isinstance(reply, Exception):
            raise reply
    stored = stored_fields(connection, event_id, value)
    if not stored:
        return None
    action, adm, etype, eid, received = (text(stored.get(name, "")) for name in EVENT_COLUMNS)
    st = {text(k): text(v) for k, v in state.items()}
    status = st.get("status") or (text(job_status) if job_status else Status.EXPIRED.value)
    if status == JobStatus.STARTED.value:
        status = Status.RUNNING.value
    return EventRow(
        event_id=event_id,
        action=action,
        administration_id=adm,
        entity_type=etype,
        entity_id=eid,
        received_at=float(received or 0),
        status=status,
        handlers=json.loads(st.get("handlers") or "{}"),
        error=st.get("error", ""),
        updated_at=float(st.get("updated_at") or 0),
        next_attempt_at=float(st.get("next_attempt_at") or 0),
    )


def get_event(connection: redis.Redis, event_id: str) -> EventRow | None:
    return _row(connection, event_id)


def iter_events(
    connection: redis.Redis,
    *,
    action: str | None = None,
    administration: str | None = None,
    status: str | None = None,
    since: float | None = None,
    limit: int | None = None,
) -> Iterator[EventRow]:
    """Stored pushes, newest first, filtered (``action`` may be an event group)."""
    found = 0
    ids = connection.zrevrangebyscore(keys.EVENTS_INDEX, "+inf", since if since else "-inf")
    for raw in ids:
        row = _row(connection, text(raw))
        if row is None:
            continue
        if action and not catalog.matches(action, row.action):
            continue
        if administration and row.administration_id != administration:
            continue
        if status and row.status != status:
            continue
        yield row
        found += 1
        if limit is not None and found >= limit:
            return


def raw_push(connection: redis.Redis, event_id: str) -> dict[str, Any]:
    """The stored push with secrets (``webhook_token``, signature) blanked.

    A body nested too deeply for Python's parser (orjson, and so receivers before
    2026-12-06, accepted 1024 levels) is shown as a note, not parsed.
    """
    stored = stored_push(connection, event_id)
    try:
        body = json.loads(stored.pop("body", b"") or b"null")
    except ValueError:
        body = "(body is not JSON)"
    except RecursionError:
        body = "(body is nested too deeply to show)"
    meta = {k: text(v) for k, v in stored.items() if not is_sensitive_key(k)}
    return {"meta": meta, "body": redact(body)}


def redact(value: Any) -> Any:
    """A copy of parsed JSON with the value of every sensitive key blanked, at any depth.

    An explicit stack rather than recursion: a hostile push may be nested deeper than
    Python's recursion limit.
    """
    top: list[Any] = [None]
    todo: list[tuple[Any, Any, Any]] = [(top, 0, value)]  # (container, slot, value to copy)
    while todo:
        into, slot, item = todo.pop()
        if isinstance(item, dict):
            copied: dict[Any, Any] = {}
            for key, inner in item.items():
                copied[key] = "[redacted]" if is_sensitive_key(str(key)) else None
                if copied[key] is None:
                    todo.append((copied, key, inner))
            into[slot] = copied
        elif isinstance(item, list):
            listed: list[Any] = [None] * len(item)
            todo.extend((listed, i, inner) for i, inner in enumerate(item))
            into[slot] = listed
        else:
            into[slot] = item
    return top[0]


def pretty_json(value: Any) -> str:
    """``json.dumps(value, indent=2, sort_keys=True)`` for parsed JSON of any depth.

    The standard library's indenting encoder recurses (and gives up from about 300
    levels); this keeps its own stack of what is still to write.
    """
    parts: list[str] = []
    todo: list[tuple[Any, int] | str] = [(value, 0)]
    while todo:
        entry = todo.pop()
        if isinstance(entry, str):  # punctuation queued before the value that follows it
            parts.append(entry)
            continue
        item, level = entry
        pad = "\n" + "  " * (level + 1)
        if isinstance(item, dict) and item:
            todo.append("\n" + "  " * level + "}")
            pairs = sorted(item.items())
            for i in range(len(pairs) - 1, -1, -1):
                todo.append((pairs[i][1], level + 1))
                todo.append(("{" if i == 0 else ",") + pad + json.dumps(str(pairs[i][0])) + ": ")
        elif isinstance(item, list) and item:
            todo.append("\n" + "  " * level + "]")
            for i in range(len(item) - 1, -1, -1):
                todo.append((item[i], level + 1))
                todo.append(("[" if i == 0 else ",") + pad)
        else:  # a scalar, {} or []
            parts.append(json.dumps(item))
    return "".join(parts)


def replay(connection: redis.Redis, queue_name: str, event_id: str) -> Job:
    """Queue a stored push again with a clean outcome record (every handler runs)."""
    row = _row(connection, event_id)
    if row is None:
        raise AdminError(f"{event_id}: the stored push has expired or never existed")
    current = connection.hget(keys.rq_job_key(event_id), "status")
    if current is not None and text(current) in (JobStatus.QUEUED.value, JobStatus.STARTED.value):
        raise AdminError(f"{event_id}: already {text(current)}; nothing to replay yet")
    queue = Queue(queue_name, connection=connection)
    connection.zrem(queue.failed_job_registry.key, event_id)
    connection.zrem(queue.scheduled_job_registry.key, event_id)
    connection.delete(state_key(event_id))
    meta = {
        "event_id": event_id,
        "action": row.action,
        "administration_id": row.administration_id,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "replay": True,
    }
    summary = " ".join(p for p in (row.action, row.entity_type, row.entity_id) if p)
    job = Job.create(
        JOB_FUNCTION,
        connection=connection,
        id=event_id,
        timeout=JOB_TIMEOUT,
        result_ttl=JOB_RESULT_TTL,
        failure_ttl=JOB_FAILURE_TTL,
        description=f"{summary} adm {row.administration_id} (replay)",
        meta=meta,
    )
    return queue.enqueue_job(job)


def failed_ids(connection: redis.Redis, queue_name: str) -> list[str]:
    registry = FailedJobRegistry(queue_name, connection=connection)
    return [text(i) for i in connection.zrange(registry.key, 0, -1)]


def dead_letter(
    connection: redis.Redis,
    queue_name: str,
    *,
    action: str | None = None,
    handler: str | None = None,
    since: float | None = None,
) -> list[EventRow]:
    """Pushes in the dead letter, oldest first, filtered."""
    rows = []
    for event_id in failed_ids(connection, queue_name):
        row = _row(connection, event_id)
        if row is None:
            row = EventRow(
                event_id, "?", "?", "", "", 0.0, Status.EXPIRED.value, {}, "raw push expired"
            )
        if action and not catalog.matches(action, row.action):
            continue
        if handler and handler not in row.failed_handlers():
            continue
        if since and row.received_at < since:
            continue
        rows.append(row)
    return rows


def requeue(connection: redis.Redis, queue_name: str, event_id: str) -> Job:
    """Take a push out of the dead letter and queue it; failed handlers get fresh attempts."""
    if not connection.exists(keys.event_key(event_id)):
        raise AdminError(f"{event_id}: the stored push has expired; it cannot run again")
    state = {text(k): text(v) for k, v in connection.hgetall(state_key(event_id)).items()}
    outcomes: dict[str, dict[str, Any]] = json.loads(state.get("handlers") or "{}")
    for record in outcomes.values():
        if record.get("status") in _FAILED:
            record["attempts"] = 0
    connection.hset(
        state_key(event_id),
        mapping={
            "handlers": json.dumps(outcomes),
            "crashes": 0,
            "status": Status.QUEUED,
            "error": "",
        },
    )
    registry = FailedJobRegistry(queue_name, connection=connection)
    try:
        return registry.requeue(event_id)
    except NoSuchJobError:
        raise AdminError(f"{event_id}: no such job (its dead-letter record expired)") from None
    except Exception as exc:
        raise AdminError(f"{event_id}: not in the dead letter ({type(exc).__name__})") from exc
