"""The webhook watchdog against the fake Moneybird and a real Redis: what it judges,
records, repairs, and how the workers keep one chain of checks going."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from rq import Queue

from hookbird.doctor import ERROR, OK, judge_watchdog
from hookbird.moneybird import Client
from hookbird.routing import Router
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore
from tests.fake_moneybird import ADMINISTRATION, FakeMoneybird
from workers import watchdog
from workers.reconcile import Reconciler


def subscribe(client: redis.Redis, fake: FakeMoneybird, **fields: object) -> str:
    hook = fake.add(
        "webhooks",
        {
            "url": "https://hooks.example/x",
            "deactivated_at": None,
            "last_http_status": 200,
            **fields,
        },
    )
    SubscriptionStore(client).add(
        webhook_id=hook["id"], administration_id=ADMINISTRATION, token="t" * 24
    )
    return str(hook["id"])


def test_judge_names_missing_deactivated_and_failing_webhooks() -> None:
    """Healthy and never-delivered webhooks pass; the three problems are told apart."""
    hooks: list[dict[str, Any]] = [
        {"id": "1", "deactivated_at": None, "last_http_status": 200},
        {"id": "2", "deactivated_at": "2026-12-01T00:00:00Z", "last_http_status": 200},
        {"id": "3", "deactivated_at": None, "last_http_status": 503},
        {"id": "4", "deactivated_at": None, "last_http_status": None},
    ]
    found = watchdog.judge("9", hooks, ["1", "2", "3", "4", "5"])
    assert [(f.webhook_id, f.problem) for f in found] == [
        ("2", watchdog.DEACTIVATED),
        ("3", watchdog.FAILING),
        ("5", watchdog.MISSING),
    ]


def test_a_failing_webhook_is_recorded_counted_and_cleared_when_healthy(
    fake: FakeMoneybird, client: Client, redis_client: redis.Redis
) -> None:
    """last_http_status 500 → a finding and a count, doctor ✗; 200 again → cleared."""
    webhook_id = subscribe(redis_client, fake, last_http_status=500)
    found = watchdog.check(redis_client, client, Settings())
    assert [(f.webhook_id, f.problem) for f in found] == [(webhook_id, watchdog.FAILING)]
    recorded = watchdog.findings(redis_client)
    assert recorded[webhook_id]["problem"] == watchdog.FAILING
    assert redis_client.hget(watchdog.COUNTS_KEY, watchdog.FAILING) == b"1"
    assert judge_watchdog(recorded, {"failing": 1}).status == ERROR
    fake.set_webhook(webhook_id, last_http_status=200)
    assert watchdog.check(redis_client, client, Settings()) == []
    assert watchdog.findings(redis_client) == {}
    assert judge_watchdog({}, {"failing": 1}).status == OK


def test_a_deactivated_webhook_is_only_reported_unless_reactivation_is_on(
    fake: FakeMoneybird, client: Client, redis_client: redis.Redis
) -> None:
    """Default: reported, left deactivated, nothing reconciled."""
    webhook_id = subscribe(redis_client, fake, deactivated_at="2026-12-01T00:00:00Z")
    (finding,) = watchdog.check(redis_client, client, Settings())
    assert (finding.problem, finding.reactivated) == (watchdog.DEACTIVATED, False)
    assert fake.record("webhooks", webhook_id)["deactivated_at"] is not None  # type: ignore[index]
    assert fake.count("PATCH", "/activate") == 0


def test_reactivation_activates_and_reconciles_what_was_missed(
    fake: FakeMoneybird, client: Client, redis_client: redis.Redis
) -> None:
    """HOOKBIRD_WEBHOOK_REACTIVATE: the webhook is activated and the administration's
    reconciled resources are reconciled, queuing the change made meanwhile."""
    contact = fake.add("contacts", {"version": 100})
    moneybird = client.administration(ADMINISTRATION)
    Reconciler(redis_client, moneybird, queue="hookbird", retention=600, dedup_ttl=600).run(
        ["contacts"]
    )
    webhook_id = subscribe(redis_client, fake, deactivated_at="2026-12-01T00:00:00Z")
    fake.change("contacts", contact["id"])
    settings = Settings(webhook_reactivate=True)
    (finding,) = watchdog.check(redis_client, client, settings, Router())
    assert finding.reactivated
    assert fake.record("webhooks", webhook_id)["deactivated_at"] is None  # type: ignore[index]
    assert len(Queue("hookbird", connection=redis_client).get_job_ids()) == 1


@pytest.mark.parametrize("interval", [0, 600])
def test_one_chain_of_checks_starts_only_with_a_webhook_to_watch(
    fake: FakeMoneybird, redis_client: redis.Redis, interval: int
) -> None:
    """No subscribed webhook, or the interval 0: nothing scheduled; else one chain, once."""
    settings = Settings(webhook_watchdog_interval=interval)
    scheduled = Queue("hookbird", connection=redis_client).scheduled_job_registry
    assert not watchdog.ensure_scheduled(redis_client, settings)
    subscribe(redis_client, fake)
    assert watchdog.ensure_scheduled(redis_client, settings) is bool(interval)
    assert not watchdog.ensure_scheduled(redis_client, settings)
    assert scheduled.count == (1 if interval else 0)
