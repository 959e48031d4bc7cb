"""Every key hookbird (and RQ on its behalf) leaves in Redis: its pattern and what bounds it.

A key is bounded when it has a TTL, or when it is one of the few keys below whose size
something else keeps in check (a zset trimmed by score, a list workers drain, a set
pruned of dead workers). :func:`audit` scans every key in a Redis and groups them by
pattern; any key with neither a TTL nor a known cap is reported as unbounded.
``bench/memory.py`` prints the audit after 100,000 pushes; ``tests/test_memory_bounds.py``
runs it after a few.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

HEX_ID = r"[0-9a-f]{28}"
#: (pattern shown, regex) for keys with one instance per push, entity or process.
PATTERNS: tuple[tuple[str, str], ...] = (
    ("hookbird:dedup:<sha256>", r"hookbird:dedup:[0-9a-f]{64}"),
    ("hookbird:event:<id>", rf"hookbird:event:{HEX_ID}"),
    ("hookbird:state:<id>", rf"hookbird:state:{HEX_ID}"),
    ("hookbird:wake:<id>", rf"hookbird:wake:{HEX_ID}"),
    ("hookbird:stranded:<id>", rf"hookbird:stranded:{HEX_ID}"),
    ("hookbird:entity:<entity>", r"hookbird:entity:.+"),
    ("hookbird:entity-lock:<entity>", r"hookbird:entity-lock:.+"),
    ("hookbird:version:<handler>:<entity>", r"hookbird:version:.+"),
    ("hookbird:seen:<adm>:<entity_type>", r"hookbird:seen:[^:]+:[A-Za-z]+"),
    ("hookbird:reconciled:<adm>", r"hookbird:reconciled:[^:]+"),
    ("hookbird:own:<adm>:<entity_id>", r"hookbird:own:[^:]+:[^:]+"),
    ("rq:job:hookbird-webhook-watchdog-<ns>", r"rq:job:hookbird-webhook-watchdog-\d+"),
    ("rq:job:hookbird-reconcile-<ns>", r"rq:job:hookbird-reconcile-\d+"),
    ("hookbird:alive:<worker>", r"hookbird:alive:.+"),
    ("hookbird:webhook:<webhook_id>", r"hookbird:webhook:.+"),
    ("hookbird:credential:<adm>", r"hookbird:credential:.+"),
    ("rq:job:<id>", rf"rq:job:{HEX_ID}"),
    ("rq:results:<id>", rf"rq:results:{HEX_ID}"),
    ("rq:executions:<id>", rf"rq:executions:{HEX_ID}"),
    ("rq:execution:<id>:<n>", rf"rq:execution:{HEX_ID}:.+"),
    ("rq:worker:<name>", r"rq:worker:.+"),
    ("rq:scheduler-lock:<queue>", r"rq:scheduler-lock:.+"),
    ("rq:scheduler_instance:<name>", r"rq:scheduler_instance:.+"),
)

#: Keys without a TTL whose size is bounded by something else: the cap, in words.
CAPPED: dict[str, str] = {
    "hookbird:events": "zset trimmed to HOOKBIRD_EVENT_RETENTION by score on every push",
    "hookbird:workers": "set; dead workers pruned on every liveness beat",
    "hookbird:webhooks": "set: one entry per subscribed webhook",
    "hookbird:dedup-scoped-since": "one small string (receiver.enqueue.legacy_window)",
    "hookbird:credentials": "set: one entry per connected administration",
    "hookbird:webhook:<webhook_id>": "one per subscribed webhook (operator's)",
    "hookbird:credential:<adm>": "one per connected administration (operator's)",
    "hookbird:seen:<adm>:<entity_type>": "hash: one field per entity Moneybird still has",
    "hookbird:reconciled:<adm>": "hash: one field per synchronizable resource",
    "hookbird:watchdog": "hash: one field per subscribed webhook with a problem",
    "hookbird:watchdog:counts": "hash: one field per kind of webhook problem (three)",
    "rq:job:hookbird-webhook-watchdog-<ns>": "one scheduled at a time; result_ttl once run",
    "rq:job:hookbird-reconcile-<ns>": "one scheduled at a time; result_ttl once run",
    "hookbird:metrics": "hash: one field per handler x outcome or bucket, per status class",
    "hookbird:metrics:credentials": "zset: one per rate budget; unused a day, pruned on flush",
    "hookbird:metrics:webhooks": "hash: one per webhook read from Moneybird; delete removes it",
    "rq:queues": "set of queue names",
    "rq:queue:<queue>": "list drained by workers",
    "rq:queue:<queue>:intermediate": "list: jobs between dequeue and start",
    "rq:workers": "set; RQ drops workers whose hash expired",
    "rq:workers:<queue>": "set; RQ drops workers whose hash expired",
    "rq:wip:<queue>": "registry of running jobs; cleaned by workers",
    "rq:finished:<queue>": "registry scored by expiry; cleaned by workers",
    "rq:failed:<queue>": "registry scored by expiry (failure_ttl); cleaned by workers",
    "rq:scheduled:<queue>": "registry drained by the scheduler when due",
    "rq:deferred:<queue>": "registry scored by expiry; cleaned by workers",
    "rq:canceled:<queue>": "registry scored by expiry; cleaned by workers",
}


def pattern_of(key: str, queue: str = "hookbird") -> str:
    """The pattern a key belongs to; unknown keys get their first two segments and ``*``."""
    for name, regex in PATTERNS:
        if re.fullmatch(regex, key):
            return name
    if key.startswith("rq:") and (key.endswith(":" + queue) or f":{queue}:" in key):
        return key.replace(":" + queue, ":<queue>", 1)
    if key in CAPPED:
        return key
    parts = key.split(":")
    return key if len(parts) <= 2 else ":".join(parts[:2]) + ":*"


@dataclass
class Group:
    """What the scan found for one pattern."""

    pattern: str
    type: str = ""
    count: int = 0
    with_ttl: int = 0
    min_ttl: float | None = None
    max_ttl: float | None = None
    keys: list[str] = field(default_factory=list)  # a sample, for MEMORY USAGE

    @property
    def without_ttl(self) -> int:
        return self.count - self.with_ttl

    @property
    def cap(self) -> str:
        return CAPPED.get(self.pattern, "")

    @property
    def unbounded(self) -> int:
        """Keys of this pattern with neither a TTL nor a known cap."""
        return 0 if self.cap else self.without_ttl


def audit(client: redis.Redis, *, queue: str = "hookbird", sample: int = 1000) -> list[Group]:
    """Every key in ``client``'s database, grouped by pattern, with TTLs and types."""
    groups: dict[str, Group] = {}
    batch: list[Any] = []

    def flush() -> None:
        with client.pipeline(transaction=False) as pipe:
            for key in batch:
                pipe.pttl(key)
                pipe.type(key)
            replies = pipe.execute()
        for i, raw in enumerate(batch):
            ttl_ms, kind = replies[2 * i], replies[2 * i + 1]
            if ttl_ms == -2:  # expired between SCAN and PTTL
                continue
            key = raw.decode("utf-8", "replace")
            group = groups.setdefault(pattern_of(key, queue), Group(pattern_of(key, queue)))
            group.type = kind.decode() if isinstance(kind, bytes) else str(kind)
            group.count += 1
            if len(group.keys) < sample:
                group.keys.append(key)
            if ttl_ms >= 0:
                ttl = ttl_ms / 1000
                group.with_ttl += 1
                group.min_ttl = ttl if group.min_ttl is None else min(group.min_ttl, ttl)
                group.max_ttl = ttl if group.max_ttl is None else max(group.max_ttl, ttl)
        batch.clear()

    for raw in client.scan_iter(count=2000):
        batch.append(raw)
        if len(batch) >= 2000:
            flush()
    flush()
    return sorted(groups.values(), key=lambda g: (-g.count, g.pattern))


def unbounded(groups: Iterable[Group]) -> list[Group]:
    return [g for g in groups if g.unbounded]


def duration(seconds: float | None) -> str:
    """``7d``, ``59m 58s``, ``12s``: a TTL as a person reads it."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    parts = [f"{n}{unit}" for n, unit in units if n]
    return " ".join(parts[:2]) or "0s"
