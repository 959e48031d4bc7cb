"""A receiver outage, end to end with real processes: ``hookbird serve``, ``hookbird worker``
and ``hookbird reconcile`` against a real Redis and the fake Moneybird on a socket.

Pushes Moneybird sent while the receiver was down are lost to it; a reconciliation
finds the changes, each is handled exactly once, Moneybird's late retry of a lost push
is not handled again, and a second reconciliation queues nothing.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2
import redis

from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.workers.conftest import (
    HOOKBIRD,
    ROOT,
    Workers,
    calls,
    run_cli,
    wait_for,
    worker_env,
)
from tests.workers.conftest import TOKEN as WEBHOOK_TOKEN
from workers.store import state_key, text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def receiver(redis_url: str, port: int, log: Path) -> Iterator[str]:
    """``hookbird serve`` as its own process, up until the block ends."""
    base = f"http://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [*HOOKBIRD, "serve", "--port", str(port)],
            cwd=ROOT,
            env=worker_env(redis_url, HOOKBIRD_WEBHOOK_TOKEN=WEBHOOK_TOKEN),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> bool:
            try:
                return httpx2.get(f"{base}/readyz", timeout=1).status_code == 200
            except httpx2.TransportError:
                return False

        wait_for(ready, timeout=30, message="the receiver to start")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def crm_calls(client: redis.Redis) -> list[tuple[str, str, str]]:
    """(action, entity id, source) of every run of the sample crm handler."""
    return [
        (c["action"], c["entity_id"], c["source"]) for c in calls(client) if c["handler"] == "crm"
    ]


def test_pushes_missed_during_an_outage_are_handled_once_after_a_reconciliation(
    redis_url: str, redis_client: redis.Redis, workers: Workers, tmp_path: Path
) -> None:
    """Outage: two changes and a deletion lost; reconcile: each handled once (source
    reconcile), the change pushed before the outage not again; a late retry of a lost
    push is skipped; a second reconcile queues nothing."""
    env = {"MONEYBIRD_API_TOKEN": TOKEN}
    with FakeMoneybird().serve() as fake:
        env["MONEYBIRD_API_URL"] = fake.api_url
        a, b, c, d = (fake.add("contacts", {"company_name": n, "version": 100}) for n in "abcd")
        port = free_port()
        hook = fake.add(
            "webhooks",
            {
                "url": f"http://127.0.0.1:{port}/webhooks/moneybird",
                "token": WEBHOOK_TOKEN,
                "secret": "not-known-to-this-receiver",
                "last_http_status": None,
            },
        )
        workers.start()
        baseline = run_cli(
            redis_url,
            "reconcile",
            "--administration",
            ADMINISTRATION,
            "--resources",
            "contacts",
            **env,
        )
        assert baseline.returncode == 0, baseline.stderr
        assert "queued 0 events" in baseline.stdout

        log = tmp_path / "receiver.log"
        with receiver(redis_url, port, log):
            pushed = fake.change("contacts", a["id"], company_name="A2")
            assert fake.push(hook["id"], "contact_changed", "Contact", pushed) == 200
            wait_for(lambda: crm_calls(redis_client), message="the pushed change handled")

        # The receiver is down: Moneybird's pushes fail (and, after its retries, are lost).
        lost_b = fake.change("contacts", b["id"], company_name="B2")
        lost_c = fake.change("contacts", c["id"], company_name="C2")
        fake.remove("contacts", d["id"])
        assert fake.push(hook["id"], "contact_changed", "Contact", lost_b) == 0
        assert fake.push(hook["id"], "contact_changed", "Contact", lost_c) == 0
        assert fake.push(hook["id"], "contact_destroyed", "Contact", {"id": d["id"]}) == 0

        with receiver(redis_url, port, log):
            found = run_cli(
                redis_url,
                "reconcile",
                "--administration",
                ADMINISTRATION,
                "--resources",
                "contacts",
                **env,
            )
            assert found.returncode == 0, found.stderr
            assert "queued 3 events" in found.stdout
            expected = {
                ("contact_changed", a["id"], "push"),
                ("contact_changed", b["id"], "reconcile"),
                ("contact_changed", c["id"], "reconcile"),
                ("contact_destroyed", d["id"], "reconcile"),
            }
            wait_for(lambda: len(crm_calls(redis_client)) >= 4, message="the reconciled events")

            # Moneybird's late retry of a lost push: accepted, but not handled again.
            assert fake.push(hook["id"], "contact_changed", "Contact", lost_b) == 200
            newest = text(redis_client.zrevrange("hookbird:events", 0, 0)[0])
            wait_for(
                lambda: redis_client.hget(state_key(newest), "status") == b"succeeded",
                message="the late push finished",
            )
            handlers = redis_client.hget(state_key(newest), "handlers") or b""
            assert b"already delivered" in handlers

            again = run_cli(
                redis_url,
                "reconcile",
                "--administration",
                ADMINISTRATION,
                "--resources",
                "contacts",
                **env,
            )
            assert again.returncode == 0, again.stderr
            assert "queued 0 events" in again.stdout

    runs = crm_calls(redis_client)
    assert sorted(runs) == sorted(expected), runs
    assert len(runs) == len(set(runs)) == 4
