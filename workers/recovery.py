"""Running again the pushes whose worker died (SIGKILL, OOM killer, lost machine).

RQ alone leaves such a job "started" until its execution entry expires (the job
timeout plus a minute), then moves it to the FailedJobRegistry as abandoned
(rq issues #2015, #2289): the push would sit in the dead letter though nothing is
wrong with it. hookbird workers therefore keep a short-lived liveness key,
``hookbird:alive:<worker name>``, refreshed by a thread every third of
``HOOKBIRD_WORKER_LIVENESS``, and list themselves in ``hookbird:workers``. Every
worker regularly looks at RQ's started registry: a started job whose hookbird worker
has no liveness key any more is put back at the front of the queue, its entity lock
released. Each such rescue counts as a crash; a push that has taken down its worker
``HOOKBIRD_MAX_ATTEMPTS`` times goes to the dead letter instead.

A worker can also die (or lose Redis) after taking a push off the queue but before
marking it started: RQ's BLMOVE has put it in the queue's intermediate list, and it is
still "queued". RQ would send it to the dead letter a minute later, at its next
maintenance pass. The reaper puts such a push back at the front of the queue once it
has seen it there, not started, for ``STRANDED_AFTER`` seconds (a live worker takes
milliseconds); it never ran, so no crash is counted.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from rq import Queue
from rq.defaults import DEFAULT_FAILURE_TTL
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry

from hookbird import keys
from hookbird.logs import get_logger
from workers.jobs import entity_of
from workers.policy import after_crash
from workers.states import Status
from workers.store import entity_lock_key, entity_set_key, entity_suffix, state_key

log = get_logger("hookbird.recovery")

WORKERS = keys.PREFIX + "workers"
REAPER_LOCK = keys.PREFIX + "lock:reaper"
#: Seconds a push may sit taken off the queue but not started before it is queued again.
STRANDED_AFTER = 5.0
#: Shortest life of an outcome record the crash counter touched (seconds).
RECORD_FLOOR = 24 * 3600

RELEASE_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and string.sub(holder, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then
  redis.call('DEL', KEYS[1])
end
return 1
"""


def keep_while_dead_lettered(connection: redis.Redis, pipe: Any, job: Job) -> None:
    """Keep a dead push's raw body and outcome record as long as the dead letter shows it.

    The record may have been created by the crash counter alone (no run ever finished
    to give it a TTL): without this it would never expire. Never shortens the push.
    """
    event_key = keys.event_key(job.id)
    left: Any = connection.ttl(event_key)
    ttl = max(int(job.failure_ttl or DEFAULT_FAILURE_TTL), int(left))
    pipe.expire(state_key(job.id), ttl)
    pipe.expire(event_key, ttl)


def alive_key(worker_name: str) -> str:
    return f"{keys.PREFIX}alive:{worker_name}"


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


def reap(connection: redis.Redis, queue_name: str, *, max_attempts: int) -> list[str]:
    """Requeue the started pushes whose worker is gone; returns their ids."""
    if not connection.set(REAPER_LOCK, "1", nx=True, px=5000):
        return []  # another worker is doing it right now
    rescued: list[str] = []
    try:
        # Only workers already dead before their pushes are looked at may be forgotten:
        # one whose liveness lapses during this pass stays listed, so the next pass
        # still finds its started push (forgetting it now would orphan that push).
        dead = _dead_workers(connection)
        registry = StartedJobRegistry(queue_name, connection=connection)
        entries: list[bytes] = connection.zrange(registry.key, 0, -1)  # type: ignore[assignment]
        for raw in entries:
            entry = _text(raw)
            job_id = entry.split(":", 1)[0]
            status, worker = (
                _text(v) for v in connection.hmget(keys.rq_job_key(job_id), "status", "worker_name")
            )
            if status != JobStatus.STARTED.value or not worker:
                continue
            if not connection.sismember(WORKERS, worker) or connection.exists(alive_key(worker)):
                continue
            _rescue(connection, queue_name, entry, worker, max_attempts)
            rescued.append(job_id)
        rescued += _requeue_stranded(connection, queue_name)
        if dead:
            connection.srem(WORKERS, *dead)
    finally:
        connection.delete(REAPER_LOCK)
    return rescued


def stranded_key(job_id: str) -> str:
    return f"{keys.PREFIX}stranded:{job_id}"


def _requeue_stranded(connection: redis.Redis, queue_name: str) -> list[str]:
    """Queue again the pushes left in RQ's intermediate list by a worker that died."""
    queue = Queue(queue_name, connection=connection)
    wip = queue.started_job_registry.key
    requeued: list[str] = []
    for raw in connection.lrange(queue.intermediate_queue_key, 0, -1):
        job_id = _text(raw)
        if _text(connection.hget(keys.rq_job_key(job_id), "status")) != JobStatus.QUEUED.value:
            continue  # started: the started registry covers it; anything else: RQ's cleanup
        now = time.time()
        marker = stranded_key(job_id)
        if connection.set(marker, repr(now), nx=True, ex=600):
            continue  # first sighting
        if now - float(_text(connection.get(marker)) or now) < STRANDED_AFTER:
            continue
        try:
            job = Job.fetch(job_id, connection=connection)
        except NoSuchJobError:  # expired meanwhile: nothing to run
            connection.lrem(queue.intermediate_queue_key, 1, job_id)
            continue
        begun: list[bytes] = connection.zrange(wip, 0, -1)  # type: ignore[assignment]
        with connection.pipeline() as pipe:  # one step, so Redis dying cannot drop the push
            pipe.multi()  # RQ's enqueue_job expects the transaction begun
            pipe.lrem(queue.intermediate_queue_key, 1, job_id)
            for entry in begun:  # an execution begun but never started
                if _text(entry).startswith(job_id + ":"):
                    pipe.zrem(wip, entry)
            pipe.delete(marker)
            queue.enqueue_job(job, pipeline=pipe, at_front=True)
            pipe.execute()
        log.warning("push queued again: its worker died before starting it", event_id=job_id)
        requeued.append(job_id)
    return requeued


def _rescue(
    connection: redis.Redis, queue_name: str, entry: str, worker: str, max_attempts: int
) -> None:
    """Take ``entry`` off the started registry and queue its push again (or dead-letter it).

    Both in one transaction: Redis dying in between must not leave the push in neither.
    """
    job_id = entry.split(":", 1)[0]
    wip = StartedJobRegistry(queue_name, connection=connection).key
    try:
        job = Job.fetch(job_id, connection=connection)
    except Exception:
        return
    crashes = int(connection.hincrby(state_key(job_id), "crashes", 1))
    entity = entity_of(connection, job)
    if entity:
        suffix = entity_suffix(*entity)
        connection.eval(RELEASE_LOCK, 1, entity_lock_key(suffix), job_id)
    queue = Queue(queue_name, connection=connection)
    if after_crash(crashes, max_attempts) == Status.DEAD:
        reason = (
            f"its worker died while handling it, {crashes} of {max_attempts} times (last: {worker})"
        )
        with connection.pipeline() as pipe:
            pipe.zrem(wip, entry)
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job.failed_job_registry.add(
                job, ttl=job.failure_ttl, exc_string=f"DeadLettered: {reason}", pipeline=pipe
            )
            pipe.hset(state_key(job_id), mapping={"status": Status.DEAD, "error": reason})
            keep_while_dead_lettered(connection, pipe, job)
            if entity:
                pipe.zrem(entity_set_key(entity_suffix(*entity)), job_id)
            pipe.execute()
        log.error("push sent to the dead letter", event_id=job_id, error=reason)
        return
    job.started_at = None
    # The crash counter may have just created the outcome record: it lives as long as
    # the stored push, and at least a day, whatever the rerun finds.
    left: Any = connection.ttl(keys.event_key(job_id))
    with connection.pipeline() as pipe:
        pipe.multi()  # RQ's enqueue_job expects the transaction begun
        pipe.zrem(wip, entry)
        pipe.hset(
            state_key(job_id),
            mapping={
                "status": Status.QUEUED,
                "error": f"worker {worker} died",
                "updated_at": repr(time.time()),
            },
        )
        pipe.expire(state_key(job_id), max(int(left), RECORD_FLOOR))
        queue.enqueue_job(job, pipeline=pipe, at_front=True)
        pipe.execute()
    log.warning("push run again: its worker died", event_id=job_id, worker=worker, crashes=crashes)


def _dead_workers(connection: redis.Redis) -> list[str]:
    """Listed workers whose liveness key is gone."""
    names = [_text(raw) for raw in connection.smembers(WORKERS)]
    return [name for name in names if not connection.exists(alive_key(name))]
