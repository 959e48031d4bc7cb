"""Scheduled reconciliation's rules against the fake Moneybird and a real Redis: its share
of the rate budget, one run at a time, and which administrations it covers."""

from __future__ import annotations

import pytest
import redis
from rq import Queue

from hookbird.moneybird import Client
from hookbird.moneybird.oauth import token_key
from hookbird.routing import Router
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from workers import reconcile_schedule
from workers.reconcile import Reconciler, ShareSpent

router = Router()


@router.on("contact")
def on_contact(event: object, ctx: object) -> None:
    """A route that makes contacts the resource to reconcile."""


def use_slots(client: Client, count: int) -> None:
    """Spend ``count`` slots of the token's shared budget, as busy handlers would."""
    for _ in range(count):
        assert client.budget.acquire(token_key(TOKEN), f"/{ADMINISTRATION}/contacts") is None


def reconciler(client: Client, redis_client: redis.Redis, share: float | None) -> Reconciler:
    return Reconciler(
        redis_client,
        client.administration(ADMINISTRATION),
        queue="hookbird",
        retention=600,
        dedup_ttl=600,
        budget_share=share,
    )


def test_a_reconciliation_stops_where_its_budget_share_ends(
    fake: FakeMoneybird, client: Client, redis_client: redis.Redis
) -> None:
    """With 40 of 150 slots used, a 25 % share (needs more than 112 free) sends nothing;
    without a share, as the CLI runs it, it goes on."""
    fake.add("contacts", {"version": 1})
    use_slots(client, 40)
    with pytest.raises(ShareSpent) as stopped:
        reconciler(client, redis_client, 0.25).run(["contacts"])
    assert stopped.value.retry_at > 0
    assert fake.count("GET", "/contacts/synchronization") == 0
    (tally,) = reconciler(client, redis_client, None).run(["contacts"])
    assert tally.seen == 1


def test_within_its_share_a_reconciliation_runs(
    fake: FakeMoneybird, client: Client, redis_client: redis.Redis
) -> None:
    """With 30 slots used (120 free) a 25 % share goes on."""
    fake.add("contacts", {"version": 1})
    use_slots(client, 30)
    (tally,) = reconciler(client, redis_client, 0.25).run(["contacts"])
    assert tally.calls == 1


def test_a_run_covers_subscribed_administrations_and_never_overlaps(
    fake: FakeMoneybird, client: Client, redis_client: redis.Redis
) -> None:
    """An administration with a subscribed webhook is reconciled (baseline, then the
    change); while another run holds the lock, a run does nothing."""
    contact = fake.add("contacts", {"version": 1})
    SubscriptionStore(redis_client).add(
        webhook_id="4180000000000000001", administration_id=ADMINISTRATION, token="t" * 24
    )
    settings = Settings()
    assert reconcile_schedule.administrations(redis_client, settings) == [ADMINISTRATION]
    assert reconcile_schedule.run_once(redis_client, client, settings, router) is None
    fake.change("contacts", contact["id"])
    redis_client.set(reconcile_schedule.LOCK_KEY, "someone-else")
    reconcile_schedule.run_once(redis_client, client, settings, router)
    assert Queue("hookbird", connection=redis_client).count == 0
    redis_client.delete(reconcile_schedule.LOCK_KEY)
    reconcile_schedule.run_once(redis_client, client, settings, router)
    assert Queue("hookbird", connection=redis_client).count == 1
    assert not redis_client.exists(reconcile_schedule.LOCK_KEY)


def test_the_chain_starts_only_with_an_administration_and_only_once(
    redis_client: redis.Redis,
) -> None:
    """No credentials and no webhook: nothing scheduled; then one chain; 0 turns it off."""
    settings = Settings()
    assert not reconcile_schedule.ensure_scheduled(redis_client, settings)
    SubscriptionStore(redis_client).add(
        webhook_id="4180000000000000001", administration_id=ADMINISTRATION, token="t" * 24
    )
    assert not reconcile_schedule.ensure_scheduled(redis_client, Settings(reconcile_interval=0))
    assert reconcile_schedule.ensure_scheduled(redis_client, settings)
    assert not reconcile_schedule.ensure_scheduled(redis_client, settings)
    assert Queue("hookbird", connection=redis_client).scheduled_job_registry.count == 1
