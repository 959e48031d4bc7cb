"""Dedup, store and enqueue: the receiver's one Redis step, shared by concurrent requests.

Each push becomes, atomically (one Lua script, ``enqueue.lua``): a dedup key set
with ``SET NX`` (and, for a signed push, a second one for what the signature
covers, so a replay with a fresh ``Idempotency-Key`` is a duplicate too); the raw
push in ``hookbird:event:<id>`` (one string, see ``hookbird.stored``); an RQ job
hash ``rq:job:<id>`` in RQ's own format, without meta and with a short
description so that Redis keeps it as a compact listpack (the worker reads the
push's entity from the stored push); the id on the RQ queue. A duplicate changes
nothing and reports the id of the push it repeats.

Group commit: requests that arrive during the same event-loop turn are sent as one
script call, and while one call is in flight the next batch collects. A push costs
the receiver at most two Redis round trips of latency and a fraction of one of work.

Replicated acknowledgements (``HOOKBIRD_MIN_REPLICAS=N``): the script call goes out
with ``WAIT N timeout`` right behind it on the same connection (one write, one round
trip, one WAIT per batch), and the batch is acknowledged only when WAIT reports N
replicas have everything that connection wrote; otherwise every push in it gets
:class:`ReplicasMissing` (503). With N = 0 nothing of this runs: ``_send`` is the
link's plain ``send``.

The RQ job is written directly rather than through ``rq.Job.create`` (about 0.1 ms
a call, more than a whole request may cost here). Its constant fields come from a
template that RQ itself builds once at start-up, so the hash is always in the
format of the installed RQ; they are written into the script's text, so a call
carries only what differs per push.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Any, NamedTuple

from redis import Redis as SyncRedis
from rq.job import Job

from hookbird import keys
from hookbird.jobspec import JOB_FAILURE_TTL, JOB_FUNCTION, JOB_RESULT_TTL, JOB_TIMEOUT
from receiver.resp import RedisLink, ReplyError, pack

#: Largest number of pushes sent in one script call.
MAX_BATCH = 256
#: Script calls in flight at once: the next batch goes out while Redis works on one.
MAX_IN_FLIGHT = 2
#: How long past one ``HOOKBIRD_DEDUP_TTL`` an upgraded Redis is still checked for
#: unscoped dedup keys: older receivers may keep writing them while a rolling upgrade
#: runs (:func:`legacy_window`).
LEGACY_MARGIN = 24 * 3600

#: Run once per script load: since when receivers have written scoped dedup keys to
#: this Redis. A Redis that holds pushes but no mark was written by a receiver from
#: before keys were scoped: it is marked now. One that holds none is new: marked 0.
_SCOPED_SINCE = """
local since = redis.call('GET', KEYS[1])
if not since then
  since = redis.call('EXISTS', KEYS[2]) == 1 and ARGV[1] or '0'
  redis.call('SET', KEYS[1], since)
end
return since
"""

_SCRIPT_TEMPLATE = resources.files("receiver").joinpath("enqueue.lua").read_text(encoding="utf-8")


class QueueUnavailable(Exception):
    """Redis could not take the push (down, timing out, out of memory, read-only)."""


class ReplicasMissing(QueueUnavailable):
    """The push is on the primary, but fewer replicas than HOOKBIRD_MIN_REPLICAS
    confirmed it in time: a failover now could lose it, so it is not acknowledged."""


class NewPush(NamedTuple):
    """One push on its way into Redis."""

    event_id: str
    dedup_key: str
    #: ``hookbird.keys.signature_dedup_key`` of a signed push, else ""
    signature_key: str
    #: ``hookbird.keys.legacy_dedup_key`` of a push with an Idempotency-Key, else ""
    legacy_key: str
    #: epoch seconds to the microsecond: the events index's score (``timestamps``)
    received_at: str
    #: the same instant as RQ writes ``created_at`` and ``enqueued_at``
    job_timestamp: str
    description: str
    #: the value of ``hookbird:event:<id>`` (``hookbird.stored.pack_push``)
    stored: bytes


class Outcome(NamedTuple):
    accepted: bool  # False: a duplicate of ``event_id``
    event_id: str


@lru_cache(maxsize=4)
def _second(whole: int) -> str:
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def timestamps(epoch_ns: int) -> tuple[str, str]:
    """An instant as hookbird writes it (epoch seconds to the microsecond, as in the
    stored push and the events index) and as RQ writes job timestamps
    (``rq.utils.utcformat``). From integer nanoseconds: half the cost of formatting
    a float twice, and strftime runs once a second."""
    seconds, micros = divmod(epoch_ns // 1000, 1_000_000)
    fraction = f"{micros:06d}"
    return f"{seconds}.{fraction}", f"{_second(seconds)}.{fraction}Z"


def job_template(queue: str) -> dict[str, bytes | str | int]:
    """The fields every hookbird job shares, as the installed RQ writes them."""
    job = Job.create(
        JOB_FUNCTION,
        connection=SyncRedis(),  # never used: creating a job does no I/O
        id="template",
        timeout=JOB_TIMEOUT,
        result_ttl=JOB_RESULT_TTL,
        failure_ttl=JOB_FAILURE_TTL,
        description="template",
    )
    job.origin = queue
    fields: dict[str, Any] = job.to_dict(include_meta=False)
    fields["status"] = "queued"
    for per_push in ("created_at", "enqueued_at", "description", "meta"):
        fields.pop(per_push, None)
    # RQ reads an empty field and a missing one alike; not writing them saves Redis
    # memory and AOF bytes on every push.
    return {name: value for name, value in fields.items() if value != ""}


def lua_string(value: str | bytes) -> str:
    """A Lua string literal for any bytes: printable ASCII as is, the rest as ``\\ddd``."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    return '"' + "".join(_LUA_CHARS[byte] for byte in raw) + '"'


_LUA_CHARS = [chr(b) if 32 <= b < 127 and chr(b) not in '\\"' else f"\\{b:03d}" for b in range(256)]


def enqueue_script(queue: str) -> str:
    """The text of ``enqueue.lua`` with its constants filled in for this queue."""
    template = job_template(queue)
    entries = []
    for name, value in template.items():
        text = value if isinstance(value, bytes) else str(value)
        entries += [lua_string(name), lua_string(text)]
    return (
        _SCRIPT_TEMPLATE.replace("{{event_prefix}}", lua_string(keys.event_key("")))
        .replace("{{job_prefix}}", lua_string(keys.rq_job_key("")))
        .replace("{{job_template}}", "{ " + ", ".join(entries) + " }")
    )


class Enqueuer:
    """Sends pushes to Redis in shared script calls; one instance per receiver process."""

    def __init__(
        self,
        link: RedisLink,
        *,
        queue: str,
        dedup_ttl: int,
        retention: int,
        min_replicas: int = 0,
        replica_timeout: float = 1.0,
    ) -> None:
        self.link = link
        self.min_replicas = min_replicas
        self._wait = pack(b"WAIT", min_replicas, max(1, round(replica_timeout * 1000)))
        self._send = self._send_and_wait if min_replicas > 0 else link.send
        self.queue_key = keys.rq_queue_key(queue)
        self.dedup_ttl = dedup_ttl
        self.retention = retention
        self._script = enqueue_script(queue)
        script_keys = (keys.RQ_QUEUES, self.queue_key, keys.EVENTS_INDEX)
        #: EVALSHA, the script's sha (set when sent), its keys, then the first arguments
        self._head: tuple[bytes, ...] = (
            b"EVALSHA",
            b"",
            b"%d" % len(script_keys),
            *(key.encode() for key in script_keys),
            b"%d" % dedup_ttl,
            b"%d" % retention,
        )
        self._sha: bytes | None = None
        #: Until when (``time.time_ns()``) pushes are also checked against the unscoped
        #: dedup keys of receivers from before keys were scoped; until Redis has told,
        #: for ever. See :func:`legacy_window`.
        self.legacy_until_ns: float = float("inf")
        self._pending: list[tuple[NewPush, asyncio.Future[Outcome]]] = []
        self._scheduled = False
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.max_in_flight = MAX_IN_FLIGHT

    async def submit(self, push: NewPush) -> Outcome:
        """Store and enqueue one push, or raise :class:`QueueUnavailable`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((push, future))
        if not self._scheduled and self._in_flight < self.max_in_flight:
            # The task first runs after the callbacks already ready in this loop turn,
            # so every request that arrived with this one joins the same batch.
            self._scheduled = True
            task = loop.create_task(self._flush())
            self._tasks.add(task)  # the loop keeps only a weak reference
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _flush(self) -> None:
        self._scheduled = False
        self._in_flight += 1
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                try:
                    outcomes = await self._store([push for push, _ in batch])
                except QueueUnavailable as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for (_, future), outcome in zip(batch, outcomes, strict=True):
                        if not future.done():
                            future.set_result(outcome)
        finally:
            self._in_flight -= 1

    async def _store(self, pushes: Sequence[NewPush]) -> list[Outcome]:
        args = [*self._head, repr(time.time()).encode()]
        for push in pushes:
            args += (
                push.event_id.encode(),
                push.dedup_key.encode(),
                push.signature_key.encode(),
                push.legacy_key.encode(),
                push.received_at.encode(),
                push.job_timestamp.encode(),
                push.description.encode("utf-8", "surrogateescape"),
                push.stored,
            )
        try:
            raw = await self._run(args)
        except (TimeoutError, ReplyError, OSError) as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return [Outcome(raw[i] == 1, raw[i + 1].decode()) for i in range(0, len(raw), 2)]

    async def _run(self, args: list[bytes]) -> Any:
        if self._sha is None:
            self._sha = await self._load()
        args[1] = self._sha
        packed = pack(*args)
        try:
            return await self._send(packed)
        except ReplyError as exc:
            if not exc.message.startswith("NOSCRIPT"):
                raise
        self._sha = await self._load()  # Redis restarted and forgot the script
        return await self._send(packed)

    async def _send_and_wait(self, packed: bytes) -> Any:
        """The script call, then WAIT on the same connection: its reply once enough
        replicas have the batch, else :class:`ReplicasMissing`."""
        reply, confirmed = await self.link.send_many(packed + self._wait, 2)
        if isinstance(reply, ReplyError):
            raise reply
        if isinstance(confirmed, ReplyError):
            raise confirmed
        if confirmed < self.min_replicas:
            raise ReplicasMissing(
                f"{confirmed} of {self.min_replicas} replicas (HOOKBIRD_MIN_REPLICAS) "
                "confirmed the batch in time"
            )
        return reply

    async def _load(self) -> bytes:
        sha: bytes = await self.link.call(b"SCRIPT", b"LOAD", self._script.encode())
        since = await self.link.call(
            b"EVAL", _SCOPED_SINCE, b"2", keys.SCOPED_SINCE, keys.EVENTS_INDEX, b"%d" % time.time()
        )
        self.legacy_until_ns = legacy_window(int(since), self.dedup_ttl)
        return sha


def legacy_window(scoped_since: int, dedup_ttl: int) -> float:
    """Until when (epoch ns) a receiver reads unscoped dedup keys, given since when
    (epoch s, 0 for a Redis that never held them) scoped ones are written: keys written
    before then expire one dedup TTL later, those of older receivers still running in
    a rolling upgrade within :data:`LEGACY_MARGIN` after that."""
    if scoped_since <= 0:
        return 0.0
    return (scoped_since + dedup_ttl + LEGACY_MARGIN) * 1e9
