"""`hookbird events list / show / replay` against pushes handled by a real worker."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess

import pytest
import redis

from hookbird.stored import pack_push, unpack_push
from tests.workers.conftest import (
    HOOKBIRD,
    ROOT,
    TOKEN,
    Pusher,
    Workers,
    calls,
    run_cli,
    wait_for,
    worker_env,
)
from workers.store import state_key

pytestmark = pytest.mark.slow


def succeeded(client: redis.Redis, *event_ids: str) -> bool:
    return all(client.hget(state_key(e), "status") == b"succeeded" for e in event_ids)


def test_list_show_and_replay(
    push: Pusher, workers: Workers, redis_client: redis.Redis, redis_url: str
) -> None:
    """The log lists and filters pushes, shows one with outcomes (no token), and replays."""
    workers.start()
    contact = push(entity_id="456")
    invoice = push(action="sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")
    wait_for(lambda: succeeded(redis_client, contact, invoice), message="both handled")

    listing = run_cli(redis_url, "events", "list")
    assert listing.returncode == 0, listing.stderr
    assert contact in listing.stdout
    assert invoice in listing.stdout
    assert listing.stdout.count("succeeded") == 2
    only = run_cli(redis_url, "events", "list", "--action", "sales_invoice", "--since", "1h")
    assert invoice in only.stdout
    assert contact not in only.stdout

    shown = run_cli(redis_url, "events", "show", contact)
    assert shown.returncode == 0, shown.stderr
    assert '"company_name": "Parkeerbedrijf"' in shown.stdout
    assert "handler tests.workers.sample_handlers:sync_contact: ok, attempts 1" in shown.stdout
    assert TOKEN not in shown.stdout

    replayed = run_cli(redis_url, "events", "replay", contact)
    assert replayed.returncode == 0, replayed.stderr
    wait_for(lambda: len(calls(redis_client)) == 3, message="the replay")
    assert [c["event_id"] for c in calls(redis_client)].count(contact) == 2

    refused = run_cli(redis_url, "events", "replay", "--action", "contact")
    assert refused.returncode == 1
    assert "Not asking on a non-interactive input: add --yes." in refused.stderr
    bulk = run_cli(redis_url, "events", "replay", "--action", "contact", "--yes")
    assert bulk.returncode == 0
    assert f"queued {contact}" in bulk.stdout
    wait_for(lambda: len(calls(redis_client)) == 4, message="the bulk replay")


def test_show_names_an_unknown_event(redis_client: redis.Redis, redis_url: str) -> None:
    """`events show` of an id that is not stored says so and how to find real ones."""
    result = run_cli(redis_url, "events", "show", "0000nothing")
    assert result.returncode == 1
    assert "hookbird events list" in result.stderr


def test_bulk_requeue_asks_first_and_reports_a_count(
    push: Pusher, workers: Workers, redis_client: redis.Redis, redis_url: str
) -> None:
    """`failed requeue --handler H` needs --yes off a terminal, then requeues every match."""
    redis_client.set("test:dead:crm", 1)
    workers.start()
    first, second = push(entity_id="1"), push(entity_id="2")
    wait_for(
        lambda: all(redis_client.hget(state_key(e), "status") == b"dead" for e in (first, second)),
        message="both dead-lettered",
    )
    handler = "tests.workers.sample_handlers:sync_contact"
    refused = run_cli(redis_url, "failed", "requeue", "--handler", handler)
    assert refused.returncode == 1
    assert "--yes" in refused.stderr
    redis_client.delete("test:dead:crm")
    done = run_cli(redis_url, "failed", "requeue", "--handler", handler, "--yes")
    assert done.returncode == 0, done.stderr
    assert "2 requeued" in done.stdout
    assert "requeue: 2 of 2 pushes in" in done.stderr  # off a terminal: a plain summary
    wait_for(lambda: succeeded(redis_client, first, second), message="both handled")


def on_a_terminal(redis_url: str, *args: str) -> tuple[int, str]:
    """Run ``hookbird ARGS`` with stdout and stderr on a pseudo-terminal: exit code, output."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [*HOOKBIRD, *args],
        cwd=ROOT,
        env=worker_env(redis_url),
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
    )
    os.close(child)
    chunks = []
    try:
        while select.select([main], [], [], 60)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(main)
        code = proc.wait(60)
    return code, b"".join(chunks).decode()


def test_a_bulk_replay_on_a_terminal_draws_a_bar(
    push: Pusher, workers: Workers, redis_client: redis.Redis, redis_url: str
) -> None:
    """On a terminal a bulk replay shows a bar and a summary instead of a line per push;
    what went wrong still gets its own line."""
    workers.start()
    ids = [push(entity_id=str(n)) for n in range(3)]
    wait_for(lambda: succeeded(redis_client, *ids), message="all handled")
    redis_client.hset(f"rq:job:{ids[0]}", "status", "queued")  # as if replayed already
    code, output = on_a_terminal(redis_url, "events", "replay", "--action", "contact", "--yes")
    assert code == 0, output
    assert "\r[" in output
    assert f"skipped {ids[0]}: already queued" in output
    assert "replay: 3 of 3 pushes in" in output
    assert "1 failed" in output
    assert "queued " not in output


@pytest.mark.parametrize(
    ("depth", "shown_as"),
    [(900, '"webhook_token": "[redacted]"'), (100_000, "nested too deeply")],
)
def test_show_a_deeply_nested_push(
    push: Pusher, redis_client: redis.Redis, redis_url: str, depth: int, shown_as: str
) -> None:
    """`events show` of a push nested 900 levels (parseable) shows it with the nested token
    blanked; 100,000 levels (past the json parser of every supported Python: 3.13 reads
    5,000) says so; neither crashes nor leaks a token."""
    event_id = push(entity_id="901")
    stored = unpack_push(redis_client.get(f"hookbird:event:{event_id}"))
    body = json.loads(stored.pop("body"))
    inner = json.dumps({"webhook_token": TOKEN, "id": "901"}).encode()
    deep = b'{"entity":' * depth + inner + b"}" * depth
    raw = json.dumps({**body, "entity": "DEEP"}).encode().replace(b'"DEEP"', deep)
    redis_client.set(f"hookbird:event:{event_id}", pack_push(stored, raw), keepttl=True)
    shown = run_cli(redis_url, "events", "show", event_id)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown_as in shown.stdout
    assert TOKEN not in shown.stdout + shown.stderr
