"""The webhook watchdog runs by itself in real ``hookbird worker`` processes, through RQ's
scheduler, and keeps running: one check after another."""

from __future__ import annotations

import redis

from hookbird.subscriptions import SubscriptionStore
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.workers.conftest import Workers, wait_for
from workers import watchdog


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
