"""The shared rate budget: a Lua sliding window in Redis, taken before sending."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis

from hookbird.moneybird import Client, errors
from hookbird.moneybird.budget import BudgetConfig, LocalBudget, RedisBudget
from hookbird.settings import Settings
from tests.fake_moneybird import FakeMoneybird


def test_grants_up_to_the_limit_then_names_when_a_slot_frees(redis_client: redis.Redis) -> None:
    """N slots per window; the N+1th is refused with the time the oldest slot expires."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=3, window=10, margin=0))
    before = time.time()
    assert [budget.acquire("k", "/1/contacts.json") for _ in range(3)] == [None] * 3
    retry_at = budget.acquire("k", "/1/contacts.json")
    assert retry_at is not None
    assert before + 9.5 <= retry_at <= time.time() + 10.5


def test_keys_have_separate_budgets(redis_client: redis.Redis) -> None:
    """Two credentials do not share slots."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=1, window=10))
    assert budget.acquire("a", "/p") is None
    assert budget.acquire("b", "/p") is None
    assert budget.acquire("a", "/p") is not None


def test_reports_count_against_both_buckets(redis_client: redis.Redis) -> None:
    """A /reports/ call needs a reports slot and a general slot."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=3, reports_limit=1, window=10))
    assert budget.acquire("k", "/1/reports/tax.json") is None
    assert budget.acquire("k", "/1/reports/tax.json") is not None
    assert budget.acquire("k", "/1/contacts.json") is None
    assert budget.acquire("k", "/1/contacts.json") is None
    assert budget.acquire("k", "/1/contacts.json") is not None


def test_refused_request_takes_no_slot(redis_client: redis.Redis) -> None:
    """A refused reports call does not eat a general slot."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=2, reports_limit=1, window=10))
    assert budget.acquire("k", "/1/reports/tax.json") is None
    for _ in range(5):
        assert budget.acquire("k", "/1/reports/tax.json") is not None
    assert budget.acquire("k", "/1/contacts.json") is None


def test_hold_blocks_until_the_servers_time(redis_client: redis.Redis) -> None:
    """hold() refuses every slot until the given time, then lets them through."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=100, window=10))
    until = time.time() + 0.3
    budget.hold("k", "/p", until)
    retry_at = budget.acquire("k", "/p")
    assert retry_at is not None
    assert abs(retry_at - until) < 0.05
    time.sleep(0.35)
    assert budget.acquire("k", "/p") is None


def test_slots_free_again_after_the_window(redis_client: redis.Redis) -> None:
    """Slots older than the window (plus margin) no longer count."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=2, window=0.2, margin=0.05))
    assert budget.acquire("k", "/p") is None
    assert budget.acquire("k", "/p") is None
    assert budget.acquire("k", "/p") is not None
    time.sleep(0.3)
    assert budget.acquire("k", "/p") is None


def test_local_budget_has_the_same_rules() -> None:
    """The in-process budget (no Redis) refuses the N+1th slot and honours holds."""
    budget = LocalBudget(BudgetConfig(limit=2, reports_limit=1, window=10))
    assert budget.acquire("k", "/1/reports/x.json") is None
    assert budget.acquire("k", "/1/reports/x.json") is not None
    assert budget.acquire("k", "/p") is None
    assert budget.acquire("k", "/p") is not None
    budget.hold("other", "/p", time.time() + 5)
    assert budget.acquire("other", "/p") is not None


def test_worker_client_raises_before_sending_when_out_of_budget(
    fake: FakeMoneybird, settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """In a worker, a spent budget raises RateLimited(retry_at) and sends nothing."""
    tight = replace(settings, rate_limit=3, rate_window=30.0)
    with (
        Client.for_worker(tight, redis_client) as one,
        Client.for_worker(tight, redis_client) as another,  # another process
    ):
        first, second = one.administration(admin_id), another.administration(admin_id)
        first.contacts.sync()
        second.contacts.sync()
        first.contacts.sync()
        started = time.monotonic()
        with pytest.raises(errors.RateLimited) as caught:
            second.contacts.sync()
    assert caught.value.retry_at is not None
    assert caught.value.retry_at > time.time() + 25
    assert time.monotonic() - started < 1.0  # raised, did not sleep
    assert fake.stats["requests"] == 3


def test_global_scope_shares_one_budget_between_tokens(
    fake: FakeMoneybird, settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """HOOKBIRD_RATE_SCOPE=global: different tokens draw from one budget."""
    fake.tokens.add("fake-second-token-0123456789")
    one = replace(settings, rate_limit=1, rate_scope="global")
    with Client.for_worker(one, redis_client) as first:
        first.administrations()
    with (
        Client.for_worker(
            replace(one, moneybird_api_token="fake-second-token-0123456789"), redis_client
        ) as other,
        pytest.raises(errors.RateLimited),
    ):
        other.administrations()


def test_cli_client_waits_for_a_slot_and_says_so(
    fake: FakeMoneybird, settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """on_budget="wait" sleeps until a slot frees, telling on_wait how long."""
    waits: list[float] = []
    tight = replace(settings, rate_limit=2, rate_window=0.5, rate_margin=0.05)
    started = time.monotonic()
    with Client(tight, redis=redis_client, on_budget="wait", on_wait=waits.append) as client:
        for _ in range(3):
            client.administration(admin_id).contacts.sync()
    assert time.monotonic() - started >= 0.45
    assert len(waits) == 1
    assert 0.3 < waits[0] <= 0.6
    assert fake.stats["requests"] == 3
    assert fake.stats["rate_limited"] == 0


def test_remaining_counts_slots_without_taking_one(redis_client: redis.Redis) -> None:
    """remaining() reports free slots (the tighter bucket for reports) and takes none."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=5, reports_limit=2, window=10))
    budget.acquire("k", "/1/reports/tax.json")
    budget.acquire("k", "/1/contacts.json")
    assert budget.remaining("k", "/1/contacts.json") == 3
    assert budget.remaining("k", "/1/reports/tax.json") == 1
    assert budget.remaining("k", "/1/contacts.json") == 3
    local = LocalBudget(BudgetConfig(limit=5, reports_limit=2, window=10))
    local.acquire("k", "/1/reports/tax.json")
    assert local.remaining("k", "/1/reports/tax.json") == 1


def test_remaining_zero_is_ignored_when_our_count_agrees(
    settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """Remaining: 0 on the last slot we counted ourselves adds no hold (no whole-second
    rounding on top of the window)."""
    with FakeMoneybird(limit=2, window=60).serve() as strict:
        local = replace(settings, moneybird_api_url=strict.api_url, rate_limit=2, rate_window=1.0)
        with Client.for_worker(local, redis_client) as client:
            client.administration(admin_id).contacts.sync()
            client.administration(admin_id).contacts.sync()
        assert not redis_client.keys("hookbird:rate:*:hold")


def test_refused_callers_are_told_different_times(redis_client: redis.Redis) -> None:
    """A backlog is spread over the coming slots (the 4th waiter a window plus slack later),
    not all sent back at the same moment."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=3, window=10, margin=0, slack=0.5))
    for _ in range(3):
        assert budget.acquire("k", "/p") is None
        time.sleep(0.02)
    told = [budget.acquire("k", "/p") for _ in range(4)]
    assert None not in told
    times = [t for t in told if t is not None]
    assert times == sorted(times)
    assert len(set(times)) == 4
    assert 10.4 < times[3] - times[0] < 10.6
