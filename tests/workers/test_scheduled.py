"""The webhook watchdog and the scheduled reconciliation run by themselves in real
``hookbird worker`` processes, through RQ's scheduler, and keep running."""

from __future__ import annotations

import redis

from hookbird.subscriptions import SubscriptionStore
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.workers.conftest import Workers, calls, wait_for
from workers import watchdog
from workers.reconcile import reconciled_key


def test_workers_check_the_webhooks_again_and_again(
    workers: Workers, redis_client: redis.Redis
) -> None:
    """A failing webhook is found by the workers' scheduled check; once it delivers again
    a later check clears it (the chain went on)."""
    with FakeMoneybird().serve() as fake:
        hook = fake.add("webhooks", {"url": "https://hooks.example/x", "last_http_status": 502})
        SubscriptionStore(redis_client).add(
            webhook_id=hook["id"], administration_id=ADMINISTRATION, token="t" * 24
        )
        env = {
            "MONEYBIRD_API_TOKEN": TOKEN,
            "MONEYBIRD_API_URL": fake.api_url,
            "HOOKBIRD_WEBHOOK_WATCHDOG_INTERVAL": "1",
        }
        workers.start(**env)
        workers.start(**env)
        wait_for(
            lambda: watchdog.findings(redis_client), timeout=30, message="the watchdog's finding"
        )
        assert watchdog.findings(redis_client)[hook["id"]]["problem"] == watchdog.FAILING
        fake.set_webhook(hook["id"], last_http_status=200)
        wait_for(lambda: not watchdog.findings(redis_client), timeout=30, message="a later check")
        runs = fake.count("GET", "/webhooks")
    assert runs >= 2


def test_workers_reconcile_by_themselves_and_hand_the_change_to_the_handlers(
    workers: Workers, redis_client: redis.Redis
) -> None:
    """HOOKBIRD_RECONCILE_INTERVAL=1: the first run records a baseline, a later one finds
    the contact changed meanwhile and the handler gets it, with source reconcile."""
    with FakeMoneybird().serve() as fake:
        contact = fake.add("contacts", {"version": 100})
        SubscriptionStore(redis_client).add(
            webhook_id="4180000000000000001", administration_id=ADMINISTRATION, token="t" * 24
        )
        env = {
            "MONEYBIRD_API_TOKEN": TOKEN,
            "MONEYBIRD_API_URL": fake.api_url,
            "HOOKBIRD_RECONCILE_INTERVAL": "1",
            "HOOKBIRD_WEBHOOK_WATCHDOG_INTERVAL": "0",
        }
        workers.start(**env)
        workers.start(**env)
        wait_for(
            lambda: redis_client.hexists(reconciled_key(ADMINISTRATION), "contacts"),
            timeout=30,
            message="the baseline",
        )
        changed = fake.change("contacts", contact["id"], company_name="Changed")
        wait_for(
            lambda: [c for c in calls(redis_client) if c["handler"] == "crm"],
            timeout=30,
            message="the reconciled change handled",
        )
    (call,) = [c for c in calls(redis_client) if c["handler"] == "crm"]
    assert (call["action"], call["entity_id"], call["source"]) == (
        "contact_changed",
        contact["id"],
        "reconcile",
    )
    assert call["version"] == changed["version"]
