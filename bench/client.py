"""Benchmark: worker processes sharing one Moneybird rate budget.

Starts a Redis and the fake Moneybird (``tests/fake_moneybird.py``, rate-limited on
its side like Moneybird, with a scaled-down budget), queues ``--jobs`` jobs per
worker, and runs ``--workers`` processes that each take jobs making one API call
(``contacts.get``) with hookbird's client built by ``Client.for_worker``. Out of
budget, the client raises ``RateLimited(retry_at)`` and the worker reschedules the
job for ``retry_at`` (a delayed set in Redis, as a job queue's scheduler would)
instead of sleeping on it.

The theoretical minimum for N calls with L per window W is (ceil(N / L) - 1) * W:
L calls at once, then L more each window. Targets: 0 x 429, every job done, wall
time <= 1.10 x the minimum. A second table counts the calls ``sync`` +
``fetch_many`` need for 250 changed contacts against one ``get`` each.

    .venv/bin/python bench/client.py                       # 4 x 400 jobs, 30 req / 6 s
    .venv/bin/python bench/client.py --jobs 100 --limit 30 --window 3
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx2  # noqa: E402
import redis  # noqa: E402

from hookbird.moneybird import Client, errors  # noqa: E402
from hookbird.redis_server import RedisServer, free_port  # noqa: E402
from hookbird.settings import Settings  # noqa: E402
from tests.fake_moneybird import ADMINISTRATION, TOKEN  # noqa: E402

QUEUE, DELAYED, DONE, READY = "bench:jobs", "bench:delayed", "bench:done", "bench:ready"

# Take a due job from the delayed set, else the next queued one.
_NEXT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1)
if due[1] then redis.call('ZREM', KEYS[2], due[1]); return due[1] end
return redis.call('LPOP', KEYS[1])
"""


def worker(settings: Settings, redis_url: str, total: int, out: Any) -> None:
    r = redis.Redis.from_url(redis_url)
    client = Client.for_worker(settings, r)
    contacts = client.administration(ADMINISTRATION).contacts
    take = r.register_script(_NEXT)
    rescheduled = 0
    r.incr(READY)
    while True:
        job = take(keys=[QUEUE, DELAYED], args=[time.time()])
        if job is None:
            if int(r.get(DONE) or 0) >= total:
                break
            first = r.zrange(DELAYED, 0, 0, withscores=True)
            wait = (first[0][1] - time.time()) if first else 0.01
            time.sleep(min(max(wait, 0.001), 0.05))
            continue
        try:
            contacts.get(job.decode().split(":", 1)[1])
        except errors.RateLimited as exc:
            r.zadd(DELAYED, {job: exc.retry_at or time.time() + 1})
            rescheduled += 1
            continue
        r.incr(DONE)
    out.put({"calls": client.calls, "rescheduled": rescheduled})


def fetch_many_savings(redis_url: str, contacts: int) -> dict[str, int]:
    """Calls to refetch changed contacts: one get each vs sync + fetch_many (unlimited fake)."""
    from tests.fake_moneybird import FakeMoneybird

    r = redis.Redis.from_url(redis_url)
    with FakeMoneybird(limit=100_000).serve() as fake:
        ids = [fake.add("contacts", {"company_name": f"C{n}"})["id"] for n in range(contacts)]
        settings = Settings(
            moneybird_api_token=TOKEN, moneybird_api_url=fake.api_url, rate_limit=100_000
        )
        r.flushall()
        one_by_one = Client.for_worker(settings, r)
        for contact_id in ids:
            one_by_one.administration(ADMINISTRATION).contacts.get(contact_id)
        batched = Client.for_worker(settings, r)
        changed = batched.administration(ADMINISTRATION).contacts.changed_since({})
        assert len(changed) == len(ids)
    return {"get each": one_by_one.calls, "sync + fetch_many": batched.calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=400, help="jobs per worker")
    parser.add_argument("--limit", type=int, default=30, help="requests per window")
    parser.add_argument("--window", type=float, default=6.0, help="window in seconds")
    parser.add_argument("--margin", type=float, default=0.25, help="HOOKBIRD_RATE_MARGIN")
    parser.add_argument(
        "--slack",
        type=float,
        default=0.1,
        help="HOOKBIRD_RATE_SLACK: these workers run a job within ~10 ms of its time",
    )
    parser.add_argument("--contacts", type=int, default=250)
    args = parser.parse_args()
    total = args.workers * args.jobs

    with tempfile.TemporaryDirectory() as tmp, RedisServer(Path(tmp)) as server:
        port = free_port()
        fake = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fake_moneybird",
                "--port",
                str(port),
                "--limit",
                str(args.limit),
                "--window",
                str(args.window),
                "--contacts",
                str(args.contacts),
            ],
            cwd=ROOT,
        )
        api_url = f"http://127.0.0.1:{port}/api/v2"
        try:
            ids = wait_for_fake(api_url, args.contacts)
            r = redis.Redis.from_url(server.url)
            # Job = unique number + contact id (the delayed set must not merge repeats).
            r.rpush(QUEUE, *(f"{n}:{ids[n % len(ids)]}" for n in range(total)))
            settings = Settings(
                moneybird_api_token=TOKEN,
                moneybird_api_url=api_url,
                rate_limit=args.limit,
                rate_window=args.window,
                rate_margin=args.margin,
                rate_slack=args.slack,
            )
            ctx = multiprocessing.get_context("spawn")
            out = ctx.Queue()
            procs = [
                ctx.Process(target=worker, args=(settings, server.url, total, out))
                for _ in range(args.workers)
            ]
            r.delete(READY, DONE)
            for proc in procs:
                proc.start()
            while int(r.get(READY) or 0) < args.workers:
                time.sleep(0.01)
            # Workers start taking jobs as soon as they are ready: time from the first.
            started = time.monotonic()
            done, progress_at = 0, time.monotonic()
            while done < total:
                time.sleep(0.005)
                now_done = int(r.get(DONE) or 0)
                if now_done > done:
                    done, progress_at = now_done, time.monotonic()
                elif time.monotonic() - progress_at > 3 * args.window + 10:
                    print(f"no progress for a while: {done} of {total} jobs done", file=sys.stderr)
                    break
            wall = time.monotonic() - started
            r.set(DONE, total)  # lets stuck workers (if any) stop
            results = [out.get(timeout=30) for _ in procs]
            for proc in procs:
                proc.join(10)
            stats = httpx2.get(f"http://127.0.0.1:{port}/_fake/stats").json()
            savings = fetch_many_savings(server.url, args.contacts)
        finally:
            fake.terminate()
            fake.wait(10)

    minimum = (math.ceil(total / args.limit) - 1) * args.window
    ratio = wall / minimum if minimum else float("nan")
    calls = sum(r["calls"] for r in results)
    rows = [
        ("workers x jobs", f"{args.workers} x {args.jobs}"),
        ("budget", f"{args.limit} req / {args.window:g} s"),
        ("margin, slack", f"{args.margin:g} s, {args.slack:g} s"),
        ("jobs done", f"{done} of {total}"),
        ("calls sent by workers", str(calls)),
        ("requests seen by Moneybird", str(stats.get("requests", 0))),
        ("429s received", str(stats.get("rate_limited", 0))),
        ("reschedules (budget said wait)", str(sum(r["rescheduled"] for r in results))),
        ("wall time", f"{wall:.1f} s"),
        ("theoretical minimum", f"{minimum:.1f} s"),
        ("wall / minimum", f"{ratio:.3f}  (target <= 1.10)"),
    ]
    print_table("shared rate budget", rows)
    n = args.contacts
    print_table(
        f"refetching {n} changed contacts",
        [(k, f"{v} calls") for k, v in savings.items()]
        + [("calls saved", str(savings["get each"] - savings["sync + fetch_many"]))],
    )
    ok = stats.get("rate_limited", 0) == 0 and ratio <= 1.10 and done == total
    print(f"\ntarget {'met' if ok else 'MISSED'}: all jobs done, 0 x 429, wall <= 1.10 x minimum")


def wait_for_fake(api_url: str, contacts: int) -> list[str]:
    """The contact ids, once the fake answers (read outside its rate limit)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            ids = httpx2.get(api_url.replace("/api/v2", "/_fake/ids/contacts")).json()
            if len(ids) == contacts:
                return [str(i) for i in ids]
        except httpx2.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the fake Moneybird did not start")
        time.sleep(0.1)


def print_table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    print(f"\n{title}")
    print("-" * (width + 30))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
