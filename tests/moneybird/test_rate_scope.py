"""The budget's scope: per credential until Moneybird shows it counts more than that."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import httpx2
import pytest
import redis
from structlog.testing import capture_logs

from hookbird.moneybird import Client, errors
from hookbird.moneybird.budget import (
    GLOBAL,
    PREFIX,
    WIDENED_FOR,
    WIDENED_KEY,
    BudgetConfig,
    LocalBudget,
    RedisBudget,
)
from hookbird.moneybird.oauth import token_key
from hookbird.settings import Settings
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird

OTHER = "fake-second-token-0123456789"


@pytest.fixture
def per_ip() -> Iterator[FakeMoneybird]:
    """A fake Moneybird that counts 4 requests per window for all tokens together."""
    with FakeMoneybird(tokens=(TOKEN, OTHER), limit=4, limit_by="ip").serve() as running:
        yield running


def settings_for(fake: FakeMoneybird, token: str) -> Settings:
    return Settings(
        moneybird_api_token=token, moneybird_api_url=fake.api_url, rate_limit=4, rate_window=300
    )


def used(client: redis.Redis, key: str) -> int:
    return int(client.zcard(f"{PREFIX}api:{key}"))


def test_a_429_with_room_left_widens_the_scope_for_every_process(
    per_ip: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """Per-IP counting: the first 429 the credential's budget did not expect widens the
    scope in Redis, logs why once, and from then on every credential (in this process
    and others) draws from one held bucket: no second 429."""
    with (
        Client.for_worker(settings_for(per_ip, TOKEN), redis_client) as first,
        Client.for_worker(settings_for(per_ip, OTHER), redis_client) as second,
    ):
        for _ in range(2):
            first.administrations()
            second.administrations()  # the fake's one window is full now
        with capture_logs() as logs, pytest.raises(errors.RateLimited) as moneybird_said:
            first.administrations()
        assert moneybird_said.value.status_code == 429
        widened = [e for e in logs if e["event"] == "rate_scope_widened"]
        assert len(widened) == 1
        assert widened[0]["budget"] == token_key(TOKEN)
        assert widened[0]["remaining"] == 1
        assert "per IP address" in widened[0]["reason"]
        assert TOKEN not in str(widened[0])
        ttl = redis_client.pttl(WIDENED_KEY)
        assert 0 < ttl <= WIDENED_FOR * 1000

        sent = per_ip.stats["requests"]
        with capture_logs() as later, pytest.raises(errors.RateLimited) as ours:
            second.administrations()
        assert ours.value.status_code is None  # our budget refused: nothing was sent
        assert not [e for e in later if e["event"] == "rate_scope_widened"]
    with Client.for_worker(settings_for(per_ip, TOKEN), redis_client) as another_process:
        with pytest.raises(errors.RateLimited) as again:
            another_process.administrations()
        assert again.value.status_code is None
    assert per_ip.stats["requests"] == sent
    assert per_ip.stats["rate_limited"] == 1


def test_after_widening_every_credential_counts_in_the_global_bucket(
    fake: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """A widened scope (set by another process) sends each credential's slots to the
    one global bucket, and its limit is the limit for all of them together."""
    fake.tokens.add(OTHER)
    RedisBudget(redis_client).widen(time.time() + 60)
    with (
        Client.for_worker(settings_for(fake, TOKEN), redis_client) as first,
        Client.for_worker(settings_for(fake, OTHER), redis_client) as second,
    ):
        for _ in range(2):
            first.administrations()
            second.administrations()
        assert used(redis_client, GLOBAL) == 4
        assert used(redis_client, token_key(TOKEN)) == used(redis_client, token_key(OTHER)) == 0
        with pytest.raises(errors.RateLimited) as refused:
            first.administrations()
        assert refused.value.status_code is None
    assert fake.stats["rate_limited"] == 0


def test_a_429_that_matches_our_own_count_keeps_the_scope(
    fake: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """Moneybird counting what the credential's budget counted (full) is no reason to
    widen: other credentials keep their own budgets."""
    tight = replace(settings_for(fake, TOKEN), rate_limit=2)
    fake.limit = 2
    fake.tokens.add(OTHER)
    with Client.for_worker(tight, redis_client) as client:
        client.administrations()
        outside = httpx2.get(  # a request hookbird did not count, on the same token
            f"{fake.api_url}/administrations.json", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert outside.status_code == 200
        with capture_logs() as logs, pytest.raises(errors.RateLimited) as caught:
            client.administrations()  # our second of two: Moneybird's third
        assert caught.value.status_code == 429
    assert not [e for e in logs if e["event"] == "rate_scope_widened"]
    assert not redis_client.exists(WIDENED_KEY)
    with Client.for_worker(replace(tight, moneybird_api_token=OTHER), redis_client) as other:
        other.administration(ADMINISTRATION).contacts.sync()  # its own budget: sent
    assert used(redis_client, GLOBAL) == 0


def test_redis_budget_widen_is_fleet_wide_and_reports_who_widened(
    redis_client: redis.Redis,
) -> None:
    """widen() is True only for the call that widened; every budget on the Redis sees it."""

    one, other = RedisBudget(redis_client), RedisBudget(redis_client)
    assert not one.widened()
    assert not other.widened()
    assert one.widen(time.time() + 60) is True
    assert other.widen(time.time() + 60) is False
    assert one.widened()
    assert RedisBudget(redis_client).widened()
    assert one.widen(time.time() - 1) is False  # a time in the past widens nothing


def test_local_budget_widens_until_the_time_given() -> None:
    """The in-process budget keeps the widened scope until the time it was given."""
    now = [1000.0]
    budget = LocalBudget(BudgetConfig(), clock=lambda: now[0])
    assert not budget.widened()
    assert budget.widen(1100.0) is True
    assert budget.widen(1050.0) is False
    assert budget.widened()
    now[0] = 1100.0
    assert not budget.widened()
