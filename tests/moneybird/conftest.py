"""Fixtures: a fake Moneybird on a real socket and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from hookbird.moneybird import Client
from hookbird.settings import Settings
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird


@pytest.fixture
def fake() -> Iterator[FakeMoneybird]:
    """A fresh fake Moneybird, served on a free port for this test."""
    with FakeMoneybird().serve() as running:
        yield running


@pytest.fixture
def settings(fake: FakeMoneybird) -> Settings:
    return Settings(moneybird_api_token=TOKEN, moneybird_api_url=fake.api_url)


@pytest.fixture
def client(settings: Settings, redis_client: redis.Redis) -> Iterator[Client]:
    """A worker-style client: shared budget in Redis, no sleeping in retries."""
    with Client.for_worker(settings, redis_client, sleep=lambda _s: None) as made:
        yield made


@pytest.fixture
def admin_id() -> str:
    return ADMINISTRATION
