"""Benchmark: the receiver's own work per push, without sockets, Redis or wrk.

Runs ``POST /webhooks/moneybird``'s ASGI app in-process on uvloop for N unique
~2 KB pushes (``bench/pushbody.py``, as wrk sends them), ten at a time so they share
script calls as they do under load. Redis is replaced by a link that answers every
script call with "accepted" at once, so what is measured is hookbird's Python:
parsing, authenticating, packing the stored push, building the script call and
answering. A trivial ASGI app on the same harness is measured too and subtracted.

It prints CPU microseconds per push (the best of ``--repeat`` runs: on a shared
machine one run swings by a fifth). With ``--instructions`` it runs itself under
valgrind's callgrind and prints instructions per push instead: slow (a minute) but
exact to a few hundred instructions, so two versions of a change can be compared
where timings cannot tell them apart.

    .venv/bin/python bench/hotpath.py                  # 20,000 pushes, best of 5
    .venv/bin/python bench/hotpath.py --instructions   # needs valgrind (apt-get install valgrind)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvloop  # noqa: E402

from bench import pushbody  # noqa: E402
from hookbird.settings import Settings  # noqa: E402
from receiver.credentials import CredentialsResolver  # noqa: E402
from receiver.endpoint import PushEndpoint  # noqa: E402
from receiver.enqueue import Enqueuer  # noqa: E402
from receiver.metrics import ReceiverMetrics  # noqa: E402

TOKEN = "bench-webhook-token-0123456789"
BATCH = 10
TEMPLATE = pushbody.template(TOKEN)


def push_body(n: int) -> bytes:
    """Push number ``n``, as bench/push.lua makes them for wrk (cheap to make: the
    instruction count covers making them too, the same for both apps)."""
    return pushbody.fill(TEMPLATE, n)


class AcceptingLink:
    """Stands in for RedisLink: every script call comes back "accepted" at once."""

    reply = [1, b"0190f3c2a1b2c3d4e5f60718293a"] * BATCH

    async def send(self, command: bytes) -> Any:
        return self.reply

    async def call(self, *args: bytes | str | int) -> Any:
        return b"0" * 40  # SCRIPT LOAD's sha


class NoSubscriptions:
    """Stands in for the Redis client: no webhook is in the subscription store, so the
    pushes are checked against HOOKBIRD_WEBHOOK_TOKEN (looked up once, then cached)."""

    async def hgetall(self, key: str) -> dict[bytes, bytes]:
        return {}


def endpoint() -> PushEndpoint:
    settings = Settings.from_env(
        {"REDIS_URL": "redis://127.0.0.1:1/0", "HOOKBIRD_WEBHOOK_TOKEN": TOKEN}, dotenv=None
    )
    app = PushEndpoint(settings, ReceiverMetrics())
    link: Any = AcceptingLink()
    app.enqueuer = Enqueuer(link, queue="hookbird", dedup_ttl=604800, retention=604800)
    client: Any = NoSubscriptions()
    app.credentials = CredentialsResolver(client, settings)
    return app


async def bare(scope: Any, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"status":"accepted"}'})


async def drive(app: Any, bodies: list[bytes]) -> float:
    """CPU seconds ``app`` takes for ``bodies``, BATCH requests at a time."""

    async def one(n: int, body: bytes) -> None:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/webhooks/moneybird",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"idempotency-key", b"bench-hotpath-%d" % n),
                (b"user-agent", b"Moneybird webhook (bench)"),
            ],
            "client": ("127.0.0.1", 50000),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] != 200:
                raise RuntimeError(f"the endpoint answered {message['status']}")

        await app(scope, receive, send)

    started = time.process_time()
    for first in range(0, len(bodies), BATCH):
        batch = bodies[first : first + BATCH]
        await asyncio.gather(*(one(first + i, body) for i, body in enumerate(batch)))
    return time.process_time() - started


def run(app_name: str, pushes: int) -> float:
    """One run in this process: CPU seconds for ``pushes`` pushes."""
    bodies = [push_body(n) for n in range(pushes)]
    app = bare if app_name == "bare" else endpoint()
    gc.collect()
    gc.freeze()  # as the receiver does once it has started
    return uvloop.run(drive(app, bodies))


def instructions(app_name: str, pushes: int) -> int:
    """Instructions callgrind counts for a whole run of this script (start-up included)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={tmp}/out",
                sys.executable,
                __file__,
                "--one",
                app_name,
                "--pushes",
                str(pushes),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The receiver's own CPU per push, in-process, Redis answered at once.",
        epilog="Example: .venv/bin/python bench/hotpath.py --instructions",
    )
    parser.add_argument("--pushes", type=int, default=20_000, help="pushes per run (20000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best counts (5)")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions under valgrind instead of timing (1,000 and 4,000 pushes)",
    )
    parser.add_argument("--one", choices=["bare", "hookbird"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        print(run(args.one, args.pushes))
        return 0

    rows = []
    if args.instructions:
        if not shutil.which("valgrind"):
            print("--instructions needs valgrind: apt-get install valgrind", file=sys.stderr)
            return 2
        small, large = 1_000, 4_000  # the difference leaves start-up out
        for name in ("bare", "hookbird"):
            per_push = (instructions(name, large) - instructions(name, small)) / (large - small)
            rows.append((name, per_push))
        unit = "instructions per push"
    else:
        for name in ("bare", "hookbird"):
            best = min(
                float(
                    subprocess.run(
                        [sys.executable, __file__, "--one", name, "--pushes", str(args.pushes)],
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout
                )
                for _ in range(args.repeat)
            )
            rows.append((name, best / args.pushes * 1e6))
        unit = "CPU µs per push"

    (_, harness), (_, total) = rows
    print(f"receiver hot path, {unit} (in-process, Redis answered at once):\n")
    print("| app                        | per push |")
    print("|----------------------------|----------|")
    print(f"| trivial ASGI app (harness) | {harness:8,.1f} |")
    print(f"| hookbird's push endpoint   | {total:8,.1f} |")
    print(f"| hookbird's own work        | {total - harness:8,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
