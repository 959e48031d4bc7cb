"""The shared rate budget: a Lua sliding window in Redis, taken before sending.

Redis's clock decides, so the Redis tests bracket every time they check between
readings of the host clock taken around the calls (a loaded machine only widens the
bracket), and wait for a named time to pass rather than sleeping a fixed while. The
in-process budget runs on a clock the tests move by hand.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import redis

from hookbird.moneybird import Client, errors
from hookbird.moneybird.budget import BudgetConfig, LocalBudget, RedisBudget
from hookbird.settings import Settings
from tests.fake_moneybird import FakeMoneybird

#: Milliseconds of rounding between the host's clock and Redis's (whole milliseconds).
ROUNDING = 0.005


def take(budget: RedisBudget, key: str, path: str) -> tuple[float, float]:
    """Acquire, expecting a slot; the host-clock moments just before and after the call,
    between which Redis timed the slot."""
    before = time.time()
    assert budget.acquire(key, path) is None
    return before, time.time()


def refusal(
    budget: RedisBudget, key: str, path: str, *, oldest: tuple[float, float], span: float
) -> float:
    """Acquire, expecting a refusal naming the moment the oldest counted slot (taken
    within ``oldest``) leaves the window: ``span`` seconds after it was taken. Redis's
    answer is translated to the host clock during the call, which may add its length."""
    before = time.time()
    retry_at = budget.acquire(key, path)
    took = time.time() - before
    assert retry_at is not None
    assert oldest[0] + span - ROUNDING <= retry_at <= oldest[1] + span + took + ROUNDING
    return retry_at


def wait_until(moment: float) -> None:
    """Return once the host clock (which Redis on this machine shares) has passed ``moment``."""
    while (left := moment - time.time()) > 0:
        time.sleep(left)


def redis_ms(client: redis.Redis) -> int:
    """Redis's clock in milliseconds, as the budget's scripts read it."""
    seconds, micros = client.time()
    return int(seconds) * 1000 + int(micros) // 1000


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = 1_790_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_defaults_are_moneybirds_limits() -> None:
    """150 requests per 5 minutes, 50 for reports; a quarter second of margin, a second
    of slack per window."""
    assert BudgetConfig() == BudgetConfig(
        limit=150, reports_limit=50, window=300.0, margin=0.25, slack=1.0
    )
    assert [b.limit for b in BudgetConfig().buckets("/1/reports/tax.json")] == [150, 50]


def test_grants_up_to_the_limit_then_names_when_a_slot_frees(redis_client: redis.Redis) -> None:
    """N slots per window; the N+1th is refused with the time the oldest slot expires."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=3, window=10, margin=0))
    first = take(budget, "k", "/1/contacts.json")
    assert [budget.acquire("k", "/1/contacts.json") for _ in range(2)] == [None] * 2
    refusal(budget, "k", "/1/contacts.json", oldest=first, span=10)


def test_the_margin_widens_the_window(redis_client: redis.Redis) -> None:
    """A slot frees ``window + margin`` after it was taken, never earlier than ``window``."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=1, window=10, margin=2))
    first = take(budget, "k", "/p")
    refusal(budget, "k", "/p", oldest=first, span=12)


def test_keys_have_separate_budgets(redis_client: redis.Redis) -> None:
    """Two credentials do not share slots."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=1, window=10))
    first = take(budget, "a", "/p")
    assert budget.acquire("b", "/p") is None
    refusal(budget, "a", "/p", oldest=first, span=10.25)


def test_reports_count_against_both_buckets(redis_client: redis.Redis) -> None:
    """A /reports/ call needs a reports slot and a general slot."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=3, reports_limit=1, window=10))
    first = take(budget, "k", "/1/reports/tax.json")
    refusal(budget, "k", "/1/reports/tax.json", oldest=first, span=10.25)
    assert budget.acquire("k", "/1/contacts.json") is None
    assert budget.acquire("k", "/1/contacts.json") is None
    refusal(budget, "k", "/1/contacts.json", oldest=first, span=10.25)


def test_refused_request_takes_no_slot(redis_client: redis.Redis) -> None:
    """A refused reports call does not eat a general slot."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=2, reports_limit=1, window=10))
    first = take(budget, "k", "/1/reports/tax.json")
    # each refused caller is promised the round after the one before it (slack 1 s)
    for waiting in range(5):
        span = 10.25 + waiting * (10.25 + 1)
        refusal(budget, "k", "/1/reports/tax.json", oldest=first, span=span)
    assert budget.acquire("k", "/1/contacts.json") is None


def test_hold_blocks_until_the_servers_time(redis_client: redis.Redis) -> None:
    """hold() refuses every slot until the given time, then lets them through."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=100, window=10))
    until = time.time() + 1  # long enough to be refused before it ends, even on a slow day
    budget.hold("k", "/p", until)
    before = time.time()
    retry_at = budget.acquire("k", "/p")
    after = time.time()
    assert retry_at is not None
    assert until - ROUNDING <= retry_at <= until + (after - before) + ROUNDING
    wait_until(retry_at)
    assert budget.acquire("k", "/p") is None


def test_a_later_shorter_hold_does_not_shorten_a_longer_one(redis_client: redis.Redis) -> None:
    """Retry-After 5 s then Retry-After 1 s: the budget stays held for the 5 s."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=100, window=10))
    longer = time.time() + 5
    budget.hold("k", "/p", longer)
    budget.hold("k", "/p", time.time() + 1)
    before = time.time()
    retry_at = budget.acquire("k", "/p")
    after = time.time()
    assert retry_at is not None
    assert longer - ROUNDING <= retry_at <= longer + (after - before) + ROUNDING


def test_a_hold_in_the_past_holds_nothing(redis_client: redis.Redis) -> None:
    """A reset time already gone (a slow response) stores no hold and refuses nothing."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=100, window=10))
    budget.hold("k", "/p", time.time() - 1)
    assert not redis_client.keys("hookbird:rate:*:hold")
    assert budget.acquire("k", "/p") is None


def test_keys_expire_a_second_after_they_stop_mattering(redis_client: redis.Redis) -> None:
    """The slot log lives ``window + margin`` plus a second; a hold and the waiting list
    a second past the time they name. Nothing lingers, nothing goes early."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=1, window=10, margin=0.5))
    log = "hookbird:rate:api:k"
    first = take(budget, "k", "/p")
    before = first[0]
    retry_at = refusal(budget, "k", "/p", oldest=first, span=10.5)
    until = time.time() + 20
    budget.hold("k", "/p", until)
    ttls = [redis_client.pttl(key) for key in (log, f"{log}:waiting", f"{log}:hold")]
    elapsed_ms = (time.time() - before) * 1000 + 5
    assert 11_500 - elapsed_ms <= ttls[0] <= 11_500
    assert 11_500 - elapsed_ms <= ttls[1] <= (retry_at - before) * 1000 + 1000 + 5
    assert (until - before) * 1000 + 1000 - elapsed_ms <= ttls[2] <= 21_000 + 5


def test_slots_free_again_after_the_window(redis_client: redis.Redis) -> None:
    """Slots older than the window (plus margin) no longer count."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=2, window=1, margin=0.05))
    first = take(budget, "k", "/p")
    assert budget.acquire("k", "/p") is None
    retry_at = refusal(budget, "k", "/p", oldest=first, span=1.05)
    wait_until(retry_at)
    assert budget.acquire("k", "/p") is None


def test_local_budget_has_the_same_rules() -> None:
    """The in-process budget (no Redis) refuses the N+1th slot and honours holds."""
    clock = Clock()
    t0 = clock.now
    budget = LocalBudget(BudgetConfig(limit=2, reports_limit=1, window=10), clock=clock)
    assert budget.acquire("k", "/1/reports/x.json") is None
    assert budget.acquire("k", "/1/reports/x.json") == t0 + 10.25
    clock.now += 1
    assert budget.acquire("k", "/p") is None
    assert budget.acquire("k", "/p") == t0 + 10.25
    budget.hold("other", "/p", t0 + 5)
    assert budget.acquire("other", "/p") == t0 + 5


def test_local_budget_frees_a_slot_exactly_window_plus_margin_later() -> None:
    """With window 10 and margin 2, a slot taken at 0 still counts at 11.9 and not at 12."""
    clock = Clock()
    t0 = clock.now
    budget = LocalBudget(BudgetConfig(limit=1, window=10, margin=2), clock=clock)
    assert budget.acquire("k", "/p") is None
    clock.now = t0 + 11.9
    assert budget.acquire("k", "/p") == t0 + 12
    assert budget.remaining("k", "/p") == 0
    clock.now = t0 + 12
    assert budget.remaining("k", "/p") == 1
    assert budget.acquire("k", "/p") is None
    assert budget.remaining("k", "/p") == 0


def test_local_holds_keep_the_latest_time_and_end_when_it_comes() -> None:
    """A later, shorter hold leaves a longer one in place; at the held time slots flow."""
    clock = Clock()
    t0 = clock.now
    budget = LocalBudget(BudgetConfig(limit=5, reports_limit=1, window=10), clock=clock)
    budget.hold("k", "/p", t0 + 5)
    budget.hold("k", "/p", t0 + 1)
    assert budget.acquire("k", "/p") == t0 + 5
    assert budget.acquire("k", "/1/reports/x.json") == t0 + 5
    clock.now = t0 + 5
    assert budget.acquire("k", "/p") is None
    assert budget.remaining("k", "/p") == 4


def test_worker_client_raises_before_sending_when_out_of_budget(
    fake: FakeMoneybird, settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """In a worker, a spent budget raises RateLimited(retry_at) and sends nothing."""
    tight = replace(settings, rate_limit=3, rate_window=30.0)
    slept: list[float] = []
    with (
        Client.for_worker(tight, redis_client, sleep=slept.append) as one,
        Client.for_worker(tight, redis_client, sleep=slept.append) as second,  # another process
    ):
        first = one.administration(admin_id)
        before = time.time()
        first.contacts.sync()
        taken = time.time()  # the oldest slot was taken between before and taken
        second.administration(admin_id).contacts.sync()
        first.contacts.sync()
        asked = time.time()
        with pytest.raises(errors.RateLimited) as caught:
            second.administration(admin_id).contacts.sync()
        took = time.time() - asked
        retry_at = caught.value.retry_at
        assert retry_at is not None
        assert before + 30.25 - ROUNDING <= retry_at <= taken + 30.25 + took + ROUNDING
        assert slept == []  # raised, did not sleep
        assert fake.stats["requests"] == 3


def test_global_scope_shares_one_budget_between_tokens(
    fake: FakeMoneybird, settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """HOOKBIRD_RATE_SCOPE=global: different tokens draw from one budget."""
    fake.tokens.add("fake-second-token-0123456789")
    one = replace(settings, rate_limit=1, rate_scope="global")
    before = time.time()
    with Client.for_worker(one, redis_client) as first:
        first.administrations()
    taken = time.time()
    with Client.for_worker(
        replace(one, moneybird_api_token="fake-second-token-0123456789"), redis_client
    ) as other:
        asked = time.time()
        with pytest.raises(errors.RateLimited) as caught:
            other.administrations()
        took = time.time() - asked
        retry_at = caught.value.retry_at
        assert retry_at is not None
        assert before + 300.25 - ROUNDING <= retry_at <= taken + 300.25 + took + ROUNDING


def test_cli_client_waits_for_a_slot_and_says_so(
    fake: FakeMoneybird, settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """on_budget="wait" sleeps until a slot frees, telling on_wait how long."""
    waits: list[tuple[float, float]] = []
    tight = replace(settings, rate_limit=2, rate_window=1.0, rate_margin=0.05)
    with Client(
        tight,
        redis=redis_client,
        on_budget="wait",
        on_wait=lambda seconds: waits.append((seconds, time.time())),
    ) as client:
        before = time.time()
        for _ in range(3):
            client.administration(admin_id).contacts.sync()
    assert time.time() - before >= 1.05 - ROUNDING  # the third went out once a slot was free
    assert len(waits) == 1
    # told to wait until the first slot frees, 1.05 s after it was taken
    seconds, told_at = waits[0]
    assert before + 1.05 - ROUNDING <= told_at + seconds <= told_at + 1.05 + ROUNDING
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


def test_remaining_is_the_tightest_bucket_even_when_the_first_is_spent(
    redis_client: redis.Redis,
) -> None:
    """The general budget spent, the reports one not: a report has no slot left."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=2, reports_limit=5, window=10))
    assert budget.acquire("k", "/1/contacts.json") is None
    assert budget.acquire("k", "/1/contacts.json") is None
    assert budget.remaining("k", "/1/reports/tax.json") == 0


def test_remaining_is_below_zero_when_a_bucket_is_over_a_lowered_limit(
    redis_client: redis.Redis,
) -> None:
    """Three slots taken under a limit of 3, then the limit lowered to 2: the general
    bucket is one over, and a report (whose own bucket is empty) has no slot either."""
    before = RedisBudget(redis_client, BudgetConfig(limit=3, reports_limit=5, window=10))
    for _ in range(3):
        assert before.acquire("k", "/1/contacts.json") is None
    after = RedisBudget(redis_client, BudgetConfig(limit=2, reports_limit=5, window=10))
    assert after.remaining("k", "/1/reports/tax.json") == -1
    local = LocalBudget(BudgetConfig(limit=3, reports_limit=5, window=10))
    for _ in range(3):
        assert local.acquire("k", "/1/contacts.json") is None
    local.config = BudgetConfig(limit=2, reports_limit=5, window=10)
    assert local.remaining("k", "/1/reports/tax.json") == -1


def test_remaining_counts_a_slot_back_once_it_leaves_the_window(
    redis_client: redis.Redis,
) -> None:
    """A slot counts for ``window + margin`` on Redis's clock (past the window alone
    too), and is free again milliseconds later."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=2, window=1, margin=0.5))
    before = redis_ms(redis_client)
    assert budget.acquire("k", "/p") is None
    taken = redis_ms(redis_client)  # the slot's time is between before and taken
    while redis_ms(redis_client) < taken + 1000 + 50:  # past the window, inside the margin
        time.sleep(0.001)
    left = budget.remaining("k", "/p")
    assert left == 1 or redis_ms(redis_client) >= before + 1500  # unless a stall ran past
    while redis_ms(redis_client) < taken + 1500 + 3:
        time.sleep(0.001)
    assert budget.remaining("k", "/p") == 2


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


def scores(client: redis.Redis, key: str) -> list[int]:
    """The scores of a sorted set, lowest first (slot and promise times, Redis milliseconds)."""
    found: list[tuple[bytes, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
    return [int(score) for _, score in found]


def test_refused_callers_are_told_different_times(redis_client: redis.Redis) -> None:
    """A backlog is spread over the coming slots (the 4th waiter a window plus slack later),
    not all sent back at the same moment."""
    budget = RedisBudget(redis_client, BudgetConfig(limit=3, window=10, margin=0, slack=1.5))
    for _ in range(3):
        assert budget.acquire("k", "/p") is None
        taken = redis_ms(redis_client)
        while redis_ms(redis_client) < taken + 2:  # the next slot in a later millisecond
            pass
    slots = scores(redis_client, "hookbird:rate:api:k")
    told: list[float] = []
    for _ in range(4):
        before = time.time()
        retry_at = budget.acquire("k", "/p")
        assert retry_at is not None
        told.append(retry_at)
        # what Redis promised, on Redis's clock, translated to ours during the call
        promised_at = max(scores(redis_client, "hookbird:rate:api:k:waiting")) / 1000
        assert promised_at <= retry_at <= promised_at + time.time() - before + ROUNDING
    assert scores(redis_client, "hookbird:rate:api:k:waiting") == [
        slots[0] + 10_000,
        slots[1] + 10_000,
        slots[2] + 10_000,
        slots[0] + 10_000 + 11_500,
    ]
    assert told == sorted(told)
