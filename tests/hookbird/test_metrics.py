"""Counting in a process, adding the counts to Redis, and reading them back for /metrics."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx2
import pytest
import redis
import redis.asyncio

from hookbird import metrics
from hookbird.moneybird import Client, errors
from hookbird.moneybird.budget import PREFIX as BUDGET_PREFIX
from hookbird.moneybird.oauth import token_key
from hookbird.settings import Settings
from receiver import pipeline
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.support import all_bytes
from workers import recovery, watchdog


def read(redis_url: str, settings: Settings | None = None) -> pipeline.Snapshot:
    """What a scrape of /metrics reads from Redis now."""

    async def go() -> pipeline.Snapshot:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            return await pipeline.read(client, settings or Settings(redis_url=redis_url))
        finally:
            await client.aclose()

    return asyncio.run(go())


def counters(snapshot: pipeline.Snapshot) -> dict[tuple[str, ...], float]:
    return {
        series: float(raw)
        for field, raw in snapshot.counters.items()
        if (series := metrics.parse_field(field)) is not None
    }


def test_the_receiver_names_the_keys_the_workers_and_the_budget_write() -> None:
    """receiver.pipeline cannot import workers or the client: its copies of their key names
    must stay equal to the originals."""
    assert pipeline.WORKERS_KEY == recovery.WORKERS
    assert recovery.alive_key("w1") == pipeline.ALIVE_PREFIX + "w1"
    assert pipeline.RATE_PREFIX == BUDGET_PREFIX + "api:"
    assert pipeline.WATCHDOG_COUNTS_KEY == watchdog.COUNTS_KEY
    problems = (watchdog.MISSING, watchdog.DEACTIVATED, watchdog.FAILING)
    assert problems == pipeline.WATCHDOG_PROBLEMS


def test_a_field_round_trips_any_label_value() -> None:
    """Label values with quotes, separators or non-ASCII come back as they went in."""
    series = ("handler_runs", 'odd|name "x"', "ünïcode")
    assert metrics.parse_field(metrics.field_name(*series)) == series
    assert metrics.parse_field("not json") is None
    assert metrics.parse_field("[1, 2]") is None


def test_status_classes() -> None:
    assert [metrics.status_class(s) for s in (200, 204, 302, 404, 429, 503, None, 99)] == [
        "2xx",
        "2xx",
        "3xx",
        "4xx",
        "4xx",
        "5xx",
        "failed",
        "failed",
    ]


def test_flushes_from_two_processes_add_up(redis_client: redis.Redis, redis_url: str) -> None:
    """Two tallies (two processes) flushed into one Redis: counts and sums add up."""
    one, other = metrics.Tally(), metrics.Tally()
    for tally in (one, other):
        tally.handler_run("crm", "handled")
        tally.handler_seconds("crm", 0.02)
    other.handler_seconds("crm", 1000.0)  # beyond the last bucket: +Inf
    metrics.flush(redis_client, one)
    metrics.flush(redis_client, other)
    assert not one.drain()
    assert not other.drain()
    found = counters(read(redis_url))
    assert found[("handler_runs", "crm", "handled")] == 2
    assert found[("handler_seconds_bucket", "crm", "0.025")] == 2
    assert found[("handler_seconds_bucket", "crm", "+Inf")] == 1
    assert found[("handler_seconds_sum", "crm")] == pytest.approx(1000.04)


def flush_drained(client: redis.Redis, drained: metrics.Drained) -> None:
    with client.pipeline(transaction=False) as pipe:
        metrics.write(pipe, drained)
        pipe.execute()


def test_a_late_flush_never_moves_the_last_success_back(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Two processes' reconciliations: the one that succeeded last flushes first; the
    other's older time, flushed after, leaves the newer in place."""
    series = ("reconcile_last_success", "scheduled")
    flush_drained(redis_client, metrics.Drained(latest={series: 2000.0}))
    flush_drained(redis_client, metrics.Drained(latest={series: 1000.0}))
    snapshot = read(redis_url)
    assert snapshot.latest == {metrics.field_name(*series): 2000.0}
    text = pipeline.render(snapshot).decode()
    assert 'hookbird_reconcile_last_success_timestamp_seconds{trigger="scheduled"} 2000.0' in text


def test_reconciliations_by_trigger_outcome_resource_and_kind(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """Every trigger and outcome is exported from the start (0), records once counted."""
    tally = metrics.Tally()
    tally.reconcile_run("cli", "ok")
    tally.reconcile_run("scheduled", "budget_wait")
    tally.reconcile_records("contacts", "changed", 3)
    tally.reconcile_records("contacts", "new", 0)
    metrics.flush(redis_client, tally)
    text = pipeline.render(read(redis_url)).decode()
    assert 'hookbird_reconcile_runs_total{outcome="ok",trigger="cli"} 1.0' in text
    assert 'hookbird_reconcile_runs_total{outcome="budget_wait",trigger="scheduled"} 1.0' in text
    assert 'hookbird_reconcile_runs_total{outcome="failed",trigger="watchdog"} 0.0' in text
    assert 'hookbird_reconcile_records_total{kind="changed",resource="contacts"} 3.0' in text
    assert 'hookbird_reconcile_records_total{kind="new",resource="contacts"} 0.0' in text
    assert 'resource="sales_invoices"' not in text
    assert 'hookbird_reconcile_last_success_timestamp_seconds{trigger="cli"}' in text
    assert 'hookbird_reconcile_last_success_timestamp_seconds{trigger="scheduled"}' not in text
    assert 'hookbird_watchdog_findings_total{problem="failing"} 0.0' in text


def test_a_failed_flush_keeps_the_counts_for_the_next(redis_client: redis.Redis) -> None:
    """Redis refusing the write: nothing is lost, the next flush sends it."""
    tally = metrics.Tally()
    tally.retry_scheduled()
    tally.reconcile_run("cli", "ok")
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    try:
        metrics.flush(dead, tally)
    finally:
        dead.close()
    tally.retry_scheduled()
    metrics.flush(redis_client, tally)
    field = metrics.field_name("retries_scheduled")
    assert redis_client.hget(metrics.METRICS_KEY, field) == b"2"
    last = metrics.field_name("reconcile_last_success", "cli")
    assert redis_client.zscore(metrics.LATEST_KEY, last)


def test_moneybird_answers_and_the_budget_left(redis_client: redis.Redis, redis_url: str) -> None:
    """The client counts answers by status class and 429s; the scrape shows the budget left
    per credential (named by its hashed token, never the token), 0 while a 429 holds it."""
    metrics.TALLY.drain()  # what earlier tests in this process counted
    with FakeMoneybird(limit=3, window=60).serve() as strict:
        settings = replace(
            Settings(redis_url=redis_url, moneybird_api_token=TOKEN),
            moneybird_api_url=strict.api_url,
        )
        credential = token_key(TOKEN)
        with Client.for_worker(settings, redis_client) as client:
            contacts = client.administration(ADMINISTRATION).contacts
            contacts.sync()
            metrics.flush(redis_client)
            snapshot = read(redis_url, settings)
            assert snapshot.budget == {credential: settings.rate_limit - 1}
            assert counters(snapshot)[("moneybird_requests", "2xx")] == 1
            # Another program spends the rest of the token's budget behind hookbird's back.
            for _ in range(2):
                httpx2.get(
                    f"{strict.api_url}/administrations.json",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
            with pytest.raises(errors.RateLimited):
                contacts.sync()
        metrics.flush(redis_client)
    snapshot = read(redis_url, settings)
    assert snapshot.budget == {credential: 0}
    found = counters(snapshot)
    assert found[("moneybird_requests", "4xx")] == 1
    assert found[("moneybird_rate_limited",)] == 1
    written = all_bytes(redis_client.hkeys(metrics.METRICS_KEY))
    assert TOKEN.encode() not in b"".join(written) + str(snapshot).encode()


def test_webhook_state_as_last_read_from_moneybird(
    redis_client: redis.Redis, redis_url: str
) -> None:
    """What hookbird last read of each webhook is on /metrics until the webhook is deleted."""
    metrics.record_webhooks(
        redis_client,
        [
            {"id": 41, "deactivated_at": None, "last_http_status": 200},
            {"id": "42", "deactivated_at": "2026-12-01T10:00:00Z", "last_http_status": 503},
            {"url": "no id: ignored"},
        ],
    )
    families = {f.name: f for f in pipeline.families(read(redis_url))}
    active = {s.labels["webhook_id"]: s.value for s in families["hookbird_webhook_active"].samples}
    status = families["hookbird_webhook_last_http_status"].samples
    assert active == {"41": 1, "42": 0}
    assert {s.labels["webhook_id"]: s.value for s in status} == {"41": 200, "42": 503}
    metrics.forget_webhook(redis_client, "42")
    assert set(read(redis_url).webhooks) == {"41"}


def test_workers_alive_counts_only_current_beats(redis_client: redis.Redis, redis_url: str) -> None:
    """A worker still listed but without its liveness key is not alive."""
    redis_client.sadd(recovery.WORKERS, "a", "b")
    redis_client.set(recovery.alive_key("a"), 1, px=60_000)
    assert read(redis_url).workers_alive == 1
