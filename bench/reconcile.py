"""Benchmark: what a reconciliation costs in Moneybird API calls and wall time.

Against the local Moneybird stand-in (``tests/fake_moneybird.py`` on a real socket,
with Moneybird's rate limit) and a private Redis, for ``--contacts`` (10,000) contacts
and ``--invoices`` (5,000) sales invoices, half of them dated in earlier years:

1. the first reconciliation (a baseline: nothing queued);
2. ``--changed`` (1 %) of each changed in Moneybird, then a reconciliation: the target
   is one GET per resource plus ⌈changed / 100⌉ POSTs, no per-record GET, no 429;
3. a second reconciliation right after (nothing new: one GET per resource);
4. a backfill (an event queued for every record: ⌈records / 100⌉ POSTs).

It prints a table: API calls (GET, POST), 429s, events queued and wall time. The rate
window is ``--window`` seconds (Moneybird's is 300) with ``--limit`` (150) requests: a
backfill of more than 150 requests waits for the window, as it would on Moneybird.

    .venv/bin/python bench/reconcile.py                       # 10,000 + 5,000, window 300 s
    .venv/bin/python bench/reconcile.py --window 20           # the same, a scaled window
    .venv/bin/python bench/reconcile.py --contacts 1000 --invoices 500 --window 5
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.tables import print_table  # noqa: E402
from hookbird.moneybird import Client  # noqa: E402
from hookbird.redis_server import RedisServer  # noqa: E402
from hookbird.settings import Settings  # noqa: E402
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird  # noqa: E402
from workers.reconcile import Reconciler  # noqa: E402

RESOURCES = ["contacts", "sales_invoices"]


def fill(fake: FakeMoneybird, contacts: int, invoices: int) -> None:
    year = time.gmtime().tm_year
    for n in range(contacts):
        fake.add("contacts", {"company_name": f"Contact {n}", "version": 1_700_000_000})
    for n in range(invoices):
        dated = f"{year - n % 2 * 3}-0{1 + n % 9}-15"  # half of them three years ago
        fake.add("sales_invoices", {"invoice_date": dated, "version": 1_700_000_000})


def change(fake: FakeMoneybird, resource: str, share: float) -> int:
    ids = list(fake.records[(ADMINISTRATION, resource)])
    picked = ids[:: max(1, round(1 / share))] if share > 0 else []
    for entity_id in picked:
        fake.change(resource, entity_id)
    return len(picked)


def measure(
    name: str, fake: FakeMoneybird, reconciler: Reconciler, *, backfill: bool = False
) -> list[str]:
    before = len(fake.requests)
    limited = fake.stats["rate_limited"]
    started = time.perf_counter()
    tallies = reconciler.run(RESOURCES, backfill=backfill)
    wall = time.perf_counter() - started
    sent = fake.requests[before:]
    gets = sum(1 for c in sent if c.method == "GET")
    posts = sum(1 for c in sent if c.method == "POST")
    records = sum(t.seen for t in tallies)
    changed = sum(t.new + t.changed + t.gone for t in tallies)
    return [
        name,
        f"{records:,}",
        f"{changed:,}",
        str(gets),
        str(posts),
        str(fake.stats["rate_limited"] - limited),
        f"{sum(t.queued for t in tallies):,}",
        f"{wall:.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--invoices", type=int, default=5_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share changed (0.01)")
    parser.add_argument("--limit", type=int, default=150, help="requests per window (150)")
    parser.add_argument("--window", type=float, default=300.0, help="rate window, s (300)")
    args = parser.parse_args()

    rows: list[list[str]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        RedisServer(Path(tmp), appendonly=False) as server,
        FakeMoneybird(limit=args.limit, window=args.window).serve() as fake,
    ):
        connection = redis.Redis.from_url(server.url)
        fill(fake, args.contacts, args.invoices)
        settings = Settings(
            moneybird_api_token=TOKEN,
            moneybird_api_url=fake.api_url,
            rate_limit=args.limit,
            rate_window=args.window,
        )

        def waiting(seconds: float) -> None:
            print(f"  rate budget spent: waiting {seconds:.0f} s", file=sys.stderr)

        with Client(settings, redis=connection, on_budget="wait", on_wait=waiting) as client:
            reconciler = Reconciler(
                connection,
                client.administration(ADMINISTRATION),
                queue="bench",
                retention=3600,
                dedup_ttl=3600,
            )
            rows.append(measure("first run (baseline)", fake, reconciler))
            changed = sum(change(fake, r, args.changed) for r in RESOURCES)
            rows.append(measure(f"{changed:,} changed", fake, reconciler))
            rows.append(measure("again, nothing new", fake, reconciler))
            rows.append(measure("backfill", fake, reconciler, backfill=True))
        connection.close()

    head = ["run", "records", "differences", "GET", "POST", "429", "queued", "wall s"]
    print(
        f"{args.contacts:,} contacts, {args.invoices:,} sales invoices; "
        f"rate limit {args.limit} per {args.window:g} s"
    )
    print_table(head, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
