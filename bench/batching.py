"""Benchmark: Moneybird API calls and time for contact pushes, with and without a batch handler.

A private Redis, the local Moneybird stand-in (``tests/fake_moneybird.py`` on a real
socket, with Moneybird's rate limit), the real receiver (``hookbird serve``) and
``--workers`` real ``hookbird worker`` processes. ``--pushes`` (1,000) ``contact_changed``
pushes about ``--contacts`` (400) contacts (every contact at least once, the rest at
random, each push a newer version) are POSTed to the receiver as fast as it answers;
the handler refreshes each contact from Moneybird (``bench/batching_handlers.py``):

- one push, one call: ``ctx.moneybird.contacts.get(id)`` per push;
- batch: ``router.on("contact_changed", batch=100, window=2.0)``, one
  ``contacts.fetch_many(ids)`` (a synchronization POST) per batch.

It prints a table: pushes, contacts, API calls (and 429s), contacts refreshed, wall time
from the first push until every push is handled, and API calls per push. The rate
window is ``--window`` seconds (Moneybird's is 300) with ``--limit`` (150) requests; the
default 30 s window runs the one-call-per-push case ten times faster than Moneybird
would let it (with 300 s its wall time is about ten times longer; the batch case stays
within one window).

    .venv/bin/python bench/batching.py                        # 1,000 pushes, 400 contacts
    .venv/bin/python bench/batching.py --window 300           # Moneybird's own window
    .venv/bin/python bench/batching.py --pushes 2000 --contacts 1000 --workers 4
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import HOOKBIRD, TOKEN, env_for, start_receiver  # noqa: E402
from bench.tables import print_table  # noqa: E402
from hookbird.redis_server import RedisServer  # noqa: E402
from tests.fake_moneybird import ADMINISTRATION, FakeMoneybird  # noqa: E402
from tests.fake_moneybird import TOKEN as API_TOKEN  # noqa: E402
from workers.store import state_key  # noqa: E402

HANDLERS = "bench.batching_handlers"
VERSION = 1_780_000_000


def pushes_about(contacts: list[str], count: int, seed: int) -> list[tuple[str, int]]:
    """(contact id, version) per push: each contact once, then at random; versions rise."""
    rng = random.Random(seed)
    order = rng.sample(contacts, len(contacts))
    order += [rng.choice(contacts) for _ in range(count - len(contacts))]
    rng.shuffle(order)
    seen: dict[str, int] = {}
    found = []
    for contact in order:
        seen[contact] = seen.get(contact, 0) + 1
        found.append((contact, VERSION + seen[contact]))
    return found


def body(contact: str, version: int) -> bytes:
    return json.dumps(
        {
            "administration_id": ADMINISTRATION,
            "webhook_id": "4180000000000000001",
            "webhook_token": TOKEN,
            "entity_type": "Contact",
            "entity_id": contact,
            "state": "active",
            "action": "contact_changed",
            "entity": {"id": contact, "company_name": f"Contact {contact}", "version": version},
        }
    ).encode()


def handled(connection: redis.Redis, ids: list[str]) -> int:
    with connection.pipeline(transaction=False) as pipe:
        for event_id in ids:
            pipe.hget(state_key(event_id), "status")
        statuses = pipe.execute()
    return sum(1 for s in statuses if s in (b"succeeded", b"dead"))


def run(args: argparse.Namespace, batch: int) -> list[str]:
    """One round: fresh Redis and fake, receiver and workers; the table's row."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(Path(tmp), appendonly=False) as server,
        FakeMoneybird(limit=args.limit, window=args.window).serve() as fake,
    ):
        contacts = [fake.add("contacts", {"company_name": "x"})["id"] for _ in range(args.contacts)]
        env = env_for(server.url, HANDLERS)
        env.update(
            MONEYBIRD_API_TOKEN=API_TOKEN,
            MONEYBIRD_API_URL=fake.api_url,
            HOOKBIRD_RATE_LIMIT=str(args.limit),
            HOOKBIRD_RATE_WINDOW=str(args.window),
            BENCH_BATCH=str(batch or ""),
            BENCH_WINDOW=str(args.batch_window),
        )
        receiver, base = start_receiver(server.url, HANDLERS)
        procs = [
            subprocess.Popen(
                [*HOOKBIRD, "worker"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
        connection = redis.Redis.from_url(server.url)
        try:
            plan = pushes_about(contacts, args.pushes, args.seed)
            ids: list[str] = []
            started = time.perf_counter()
            with httpx2.Client(timeout=10) as http:
                for n, (contact, version) in enumerate(plan):
                    response = http.post(
                        f"{base}/webhooks/moneybird",
                        content=body(contact, version),
                        headers={"Idempotency-Key": f"bench-{n}"},
                    )
                    response.raise_for_status()
                    ids.append(response.json()["event_id"])
            sent = time.perf_counter() - started
            deadline = time.monotonic() + args.timeout
            while handled(connection, ids) < len(ids):
                if time.monotonic() > deadline:
                    raise SystemExit(f"not drained after {args.timeout:g} s")
                time.sleep(0.2)
            wall = time.perf_counter() - started
            refreshed = int(connection.get("bench:refreshed") or 0)
        finally:
            for proc in [*procs, receiver]:
                proc.terminate()
            for proc in [*procs, receiver]:
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            connection.close()
        calls = fake.stats["requests"]
        mode = f"batch {batch}, window {args.batch_window:g} s" if batch else "one call per push"
        print(f"  {mode}: pushes sent in {sent:.1f} s, drained in {wall:.1f} s", file=sys.stderr)
        return [
            mode,
            f"{len(ids):,}",
            f"{len(set(contacts)):,}",
            f"{calls:,}",
            str(fake.stats["rate_limited"]),
            f"{refreshed:,}",
            f"{wall:.1f}",
            f"{calls / len(ids):.3f}",
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pushes", type=int, default=1000)
    parser.add_argument("--contacts", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100, help="batch size (100)")
    parser.add_argument("--batch-window", type=float, default=2.0, help="batch window, s (2)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=150, help="requests per window (150)")
    parser.add_argument("--window", type=float, default=30.0, help="rate window, s (30)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="give up after, s")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--only", choices=["batch", "single"], help="run one case only")
    args = parser.parse_args()
    if args.pushes < args.contacts:
        parser.error("--pushes must be at least --contacts (every contact gets a push)")

    rows = []
    if args.only != "single":
        rows.append(run(args, args.batch))
    if args.only != "batch":
        rows.append(run(args, 0))
    head = [
        "handler",
        "pushes",
        "contacts",
        "API calls",
        "429",
        "refreshed",
        "wall s",
        "calls/push",
    ]
    print(
        f"{args.pushes:,} contact pushes about {args.contacts:,} contacts, {args.workers} "
        f"workers; rate limit {args.limit} per {args.window:g} s"
    )
    print_table(head, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
