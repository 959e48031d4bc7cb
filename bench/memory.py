"""Benchmark: is Redis memory bounded, and how much does each push cost?

One run, with default settings:

1. starts a private Redis (AOF ``everysec``, ``noeviction``) and ``hookbird serve``
   (single-webhook token mode) as a subprocess;
2. POSTs ``--pushes`` (100,000) unique ~2 KB pushes, each with its own
   ``Idempotency-Key`` and its own invoice, from ``--concurrency`` httpx2 clients
   over real sockets, and checks every one was answered 200 ``accepted``;
3. stops the receiver and lets ``--workers`` ``hookbird worker --burst`` processes
   handle them all with two no-op handlers (``bench/memory_handlers.py``, one of them
   ``latest_only``), then checks that every push succeeded;
4. scans every key in Redis and prints, per key pattern: count, how many have a TTL,
   the smallest and largest TTL, or the cap that bounds a key without one
   (``bench/memory_keys.py``). A key with neither is flagged and the exit status is 1;
5. prints bytes per push (``MEMORY USAGE`` sampled per pattern, and ``used_memory``
   before, after receipt and after handling) and the steady-state memory for
   ``--rate`` pushes a second kept ``--retention-days``, with the formula.

    .venv/bin/python bench/memory.py                                 # 100,000 pushes
    .venv/bin/python bench/memory.py --rate 10 --retention-days 7
    .venv/bin/python bench/memory.py --pushes 5000 --workers 1        # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.memory_keys import Group, audit, duration, unbounded  # noqa: E402
from bench.processes import HOOKBIRD, TOKEN, env_for, start_receiver  # noqa: E402
from hookbird.jobspec import JOB_RESULT_TTL  # noqa: E402
from hookbird.redis_server import RedisServer  # noqa: E402
from hookbird.settings import Settings  # noqa: E402

#: How long each pattern's keys live, per push: the dedup TTL, the retention, or the
#: finished-job TTL. Patterns not listed are a constant, not a cost per push.
LIFETIME = {
    "hookbird:dedup:<sha256>": "dedup",
    "hookbird:event:<id>": "retention",
    "hookbird:state:<id>": "retention",
    "hookbird:events": "retention",
    "hookbird:version:<handler>:<entity>": "retention",
    "rq:job:<id>": "job",
    "rq:results:<id>": "job",
    "rq:finished:<queue>": "job",
}


def push_body(i: int) -> bytes:
    """A ``sales_invoice_state_changed_to_paid`` push of about 2 KB about invoice ``i``."""
    entity = {
        "id": str(496081000000000000 + i),
        "administration_id": "123456789",
        "contact_id": "496081200000000001",
        "invoice_id": f"2026-{i:06d}",
        "state": "paid",
        "total_price_incl_tax": "1452.0",
        "currency": "EUR",
        "version": 1790000000 + i,
        "details": [
            {
                "id": str(496081300000000000 + k),
                "description": f"Consultancy day {k}",
                "price": "100.0",
                "tax_rate_id": "496081400000000001",
                "amount": "1 x",
            }
            for k in range(12)
        ],
    }
    data = {
        "administration_id": "123456789",
        "webhook_id": "4180000000000000001",
        "webhook_token": TOKEN,
        "entity_type": "SalesInvoice",
        "entity_id": entity["id"],
        "state": "paid",
        "action": "sales_invoice_state_changed_to_paid",
        "entity": entity,
    }
    return json.dumps(data).encode()


HANDLERS = "bench.memory_handlers"


async def send_all(base: str, pushes: int, concurrency: int) -> int:
    """POST every push once; returns how many were answered 200 ``accepted``."""
    url = f"{base}/webhooks/moneybird"
    next_push = iter(range(pushes))
    accepted = 0
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def sender(http: httpx2.AsyncClient) -> None:
        nonlocal accepted
        for i in next_push:
            response = await http.post(
                url, content=push_body(i), headers={"Idempotency-Key": f"bench-memory-{i}"}
            )
            if response.status_code != 200 or response.json().get("status") != "accepted":
                raise SystemExit(f"push {i}: HTTP {response.status_code} {response.text}")
            accepted += 1

    async with httpx2.AsyncClient(timeout=30, limits=limits) as http:
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))
    return accepted


def used_memory(r: redis.Redis) -> int:
    info: dict[str, Any] = r.info("memory")
    return int(info["used_memory"])


def memory_usage(r: redis.Redis, group: Group) -> float:
    """Mean ``MEMORY USAGE`` of the group's sampled keys (all their elements counted)."""
    with r.pipeline(transaction=False) as pipe:
        for key in group.keys:
            pipe.memory_usage(key, samples=0)
        sizes = [s for s in pipe.execute() if s is not None]
    return sum(sizes) / len(sizes) if sizes else 0.0


def table(groups: list[Group], sizes: dict[str, float]) -> list[str]:
    head = f"{'key pattern':<36} {'type':<6} {'count':>7} {'TTL':>7} {'min TTL':>8} "
    head += f"{'max TTL':>8} {'bytes/key':>9}  bound"
    lines = [head, "-" * len(head)]
    for g in groups:
        if g.without_ttl == 0:
            bound = "TTL"
        elif g.cap:
            bound = ("TTL, or " if g.with_ttl else "") + g.cap
        else:
            bound = f"UNBOUNDED: {g.without_ttl} key(s) with no TTL and no cap"
        lines.append(
            f"{g.pattern:<36} {g.type:<6} {g.count:>7} {g.with_ttl:>7} "
            f"{duration(g.min_ttl):>8} {duration(g.max_ttl):>8} {sizes[g.pattern]:>9.0f}  {bound}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent HTTP clients")
    parser.add_argument("--workers", type=int, default=2, help="hookbird worker processes")
    parser.add_argument("--rate", type=float, default=10, help="pushes per second, steady state")
    parser.add_argument(
        "--retention-days", type=float, default=None, help="default: HOOKBIRD_EVENT_RETENTION"
    )
    parser.add_argument("--sample", type=int, default=2000, help="keys per pattern sized")
    args = parser.parse_args()
    settings = Settings()
    retention = args.retention_days * 86400 if args.retention_days else settings.event_retention
    dedup = min(settings.dedup_ttl, retention) if args.retention_days else settings.dedup_ttl

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        r = redis.Redis.from_url(server.url)
        before = used_memory(r)

        receiver, base = start_receiver(server.url, HANDLERS)
        started = time.perf_counter()
        try:
            accepted = asyncio.run(send_all(base, args.pushes, args.concurrency))
        finally:
            receiver.terminate()
            receiver.wait(30)
        send_seconds = time.perf_counter() - started
        received = used_memory(r)

        started = time.perf_counter()
        workers = [
            subprocess.Popen(
                [*HOOKBIRD, "worker", "--burst"],
                cwd=ROOT,
                env=env_for(server.url, HANDLERS),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        for worker in workers:
            worker.wait()
        work_seconds = time.perf_counter() - started
        finished = int(r.zcard(f"rq:finished:{settings.queue}"))  # type: ignore[arg-type]
        queued = int(r.llen(f"rq:queue:{settings.queue}"))  # type: ignore[arg-type]
        handled = used_memory(r)

        started = time.perf_counter()
        groups = audit(r, queue=settings.queue, sample=args.sample)
        sizes = {g.pattern: memory_usage(r, g) for g in groups}
        scan_seconds = time.perf_counter() - started
        r.close()

    n = accepted
    print()
    print(
        f"{n} pushes accepted by `hookbird serve` over HTTP ({args.concurrency} concurrent "
        f"httpx2 clients, {len(push_body(0))}-byte bodies, unique Idempotency-Keys) in "
        f"{send_seconds:.0f} s ({n / send_seconds:.0f}/s)"
    )
    print(
        f"handled by {args.workers} `hookbird worker --burst` process(es) in {work_seconds:.0f} s "
        f"({n / work_seconds:.0f}/s): {finished} finished, {queued} left on the queue"
    )
    print(f"every key scanned and sized in {scan_seconds:.0f} s")
    print()
    for line in table(groups, sizes):
        print(line)
    print()

    # bytes per push, by how long they stay
    per_push = {"dedup": 0.0, "retention": 0.0, "job": 0.0}
    for g in groups:
        life = LIFETIME.get(g.pattern)
        if life:
            per_push[life] += sizes[g.pattern] * g.count / n
    counted = sum(per_push.values()) * n
    overhead = (handled - before) / counted if counted else 1.0
    print("bytes per push (MEMORY USAGE, summed per pattern / pushes):")
    print(f"  kept HOOKBIRD_DEDUP_TTL:        b_dedup = {per_push['dedup']:>6.0f}")
    print(f"  kept HOOKBIRD_EVENT_RETENTION:  b_event = {per_push['retention']:>6.0f}")
    job_life = f"kept result_ttl ({JOB_RESULT_TTL} s):"
    print(f"  {job_life:<31} b_job   = {per_push['job']:>6.0f}")
    print("used_memory:")
    print(f"  empty Redis {before / 1e6:.1f} MB")
    print(
        f"  after receipt {received / 1e6:.1f} MB: {(received - before) / n:.0f} bytes per "
        "queued push"
    )
    print(
        f"  after handling {handled / 1e6:.1f} MB: {(handled - before) / n:.0f} bytes per "
        f"handled push, {overhead:.2f} x MEMORY USAGE (allocator and keyspace overhead)"
    )
    print()
    steady = (
        overhead
        * args.rate
        * (
            dedup * per_push["dedup"]
            + retention * per_push["retention"]
            + min(JOB_RESULT_TTL, retention) * per_push["job"]
        )
    )
    print(
        f"steady state at {args.rate:g} pushes/s, retention {retention / 86400:g} d "
        f"(dedup {dedup / 86400:g} d):"
    )
    print(
        "  memory = k x rate x (dedup_ttl x b_dedup + retention x b_event + "
        f"{JOB_RESULT_TTL} x b_job)"
    )
    print(
        f"         = {overhead:.2f} x {args.rate:g} x ({dedup:.0f} x {per_push['dedup']:.0f} "
        f"+ {retention:.0f} x {per_push['retention']:.0f} + {JOB_RESULT_TTL} x "
        f"{per_push['job']:.0f}) = {steady / 1e9:.2f} GB"
    )
    print(
        f"  = {steady / (args.rate * retention) / 1024:.2f} KB per push kept, "
        f"{args.rate * retention:,.0f} pushes in retention"
    )
    bad = unbounded(groups)
    print()
    if bad or queued or finished != n:
        for g in bad:
            print(f"UNBOUNDED: {g.without_ttl} {g.pattern} key(s) without TTL, e.g. {g.keys[0]}")
        if queued or finished != n:
            print(f"NOT DRAINED: {finished} of {n} pushes finished, {queued} queued")
        return 1
    print("every key has a TTL or a cap")
    return 0


if __name__ == "__main__":
    sys.exit(main())
