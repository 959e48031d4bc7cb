"""Benchmark: how long does a console page take with 100,000 stored pushes?

One run starts a private Redis and fills it the way the receiver and the workers
would: ``--pushes`` stored pushes (``hookbird:event:<id>`` with a ~1 KB body, in the
time index ``hookbird:events``) with outcome records (most succeeded, 1 in 50 dead,
1 in 1,000 a ``sales_invoice`` push among ``contact`` pushes). Then it serves the
receiver with the console open and times, over real HTTP, the pages an operator
opens: the newest pushes, the tenth page down, a filter that matches rarely (which
reads at most ``console.pages.SCAN_LIMIT`` pushes per page), the dead ones, one
push's timeline and the health page. Each is fetched ``--repeat`` times; the table
shows the median and the slowest, and how many pushes each page read.

    .venv/bin/python bench/console.py                  # 100,000 pushes
    .venv/bin/python bench/console.py --pushes 10000 --repeat 5

No target is asserted: the numbers say whether a page stays fast as the store grows
(the same pages with ``--pushes 1000`` give the baseline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from console.pages import SCAN_LIMIT  # noqa: E402
from hookbird import keys  # noqa: E402
from hookbird.redis_server import RedisServer  # noqa: E402
from hookbird.settings import Settings  # noqa: E402
from hookbird.stored import pack_push  # noqa: E402
from receiver.app import create_app  # noqa: E402
from tests.support import serve_in_thread  # noqa: E402

HANDLER = "crm:sync_contact"


def fill(client: redis.Redis, pushes: int) -> tuple[str, str]:
    """Store ``pushes`` pushes with outcome records; the ids of one dead and one old push."""
    start = time.time() - pushes * 0.5
    dead_id = oldest = ""
    with client.pipeline(transaction=False) as pipe:
        for n in range(pushes):
            received = start + n * 0.5
            event_id = keys.new_event_id(received)
            rare = n % 1000 == 7
            action = "sales_invoice_state_changed_to_paid" if rare else "contact_changed"
            header = {
                "idempotency_key": f"bench-{n}",
                "received_at": repr(received),
                "action": action,
                "administration_id": "318236117648574435",
                "webhook_id": "418000000000000001",
                "entity_type": "SalesInvoice" if rare else "Contact",
                "entity_id": str(400000 + n),
            }
            entity = {"id": str(400000 + n), "version": n, "company_name": "x" * 800}
            body = json.dumps({**header, "webhook_token": "", "entity": entity}).encode()
            dead = n % 50 == 3
            record = {"status": "dead" if dead else "ok", "attempts": 1, "at": received + 0.2}
            if dead:
                record["error"] = "NotFound: contact 42 is gone"
                dead_id = event_id
            pipe.set(keys.event_key(event_id), pack_push(header, body))
            pipe.zadd(keys.EVENTS_INDEX, {event_id: received})
            pipe.hset(
                f"hookbird:state:{event_id}",
                mapping={
                    "status": "dead" if dead else "succeeded",
                    "attempts": "1",
                    "updated_at": repr(received + 0.2),
                    "handlers": json.dumps({HANDLER: record}),
                },
            )
            if n == 0:
                oldest = event_id
            if n % 5000 == 4999:
                pipe.execute()
        pipe.execute()
    return dead_id, oldest


def timed(http: httpx2.Client, url: str, repeat: int) -> tuple[float, float, str]:
    seconds = []
    text = ""
    for _ in range(repeat):
        began = time.perf_counter()
        response = http.get(url)
        seconds.append(time.perf_counter() - began)
        response.raise_for_status()
        text = response.text
    return statistics.median(seconds) * 1000, max(seconds) * 1000, text


def looked_at(html: str) -> str:
    marker = " pushes looked at"
    at = html.find(marker)
    if at < 0:
        return "-"
    return html[:at].rsplit(None, 1)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hookbird-bench-console-") as tmp:
        server = RedisServer(Path(tmp) / "redis")
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            began = time.perf_counter()
            dead_id, oldest = fill(client, args.pushes)
            filled = time.perf_counter() - began
            memory = client.info("memory")["used_memory_human"]
            print(f"stored {args.pushes} pushes in {filled:.1f} s; Redis uses {memory}")
            settings = Settings(redis_url=server.url, webhook_token="bench-token", console="open")
            with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=60) as http:
                home = f"{base}/console/"
                _, _, first = timed(http, home, 1)
                tenth = home
                for _ in range(9):  # follow "Older pushes" nine times
                    link = first.split('id="older"')[0].rsplit('href="', 1)[1].split('"')[0]
                    tenth = base + link.replace("&amp;", "&")
                    _, _, first = timed(http, tenth, 1)
                pages = [
                    ("newest 50, lag chart", home),
                    ("10th page down", tenth),
                    ("rare action (1 in 1,000)", f"{home}?action=sales_invoice"),
                    ("outcome dead (1 in 50)", f"{home}?outcome=dead"),
                    ("one push's timeline", f"{base}/console/events/{dead_id}"),
                    ("oldest push's timeline", f"{base}/console/events/{oldest}"),
                    ("health and budget", f"{base}/console/health"),
                ]
                print(
                    f"\n{args.repeat} fetches per page over HTTP, {args.pushes} stored pushes "
                    f"(a page reads at most {SCAN_LIMIT}):\n"
                )
                print(f"| {'page':<26} | median ms | slowest ms | pushes read |")
                print(f"|{'-' * 28}|-----------|------------|-------------|")
                for name, url in pages:
                    median, slowest, html = timed(http, url, args.repeat)
                    print(
                        f"| {name:<26} | {median:9.1f} | {slowest:10.1f} | {looked_at(html):>11} |"
                    )
        finally:
            client.close()
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
