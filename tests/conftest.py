"""Shared fixtures: one real redis-server for the session, flushed around every test.

The server is started by the tests on a free port in a temporary directory (the
first ``redis-server`` on PATH, else the embedded Valkey). Set
``HOOKBIRD_TEST_REDIS_URL`` to use a Redis you started yourself instead: it will be
flushed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from hookbird.redis_server import RedisServer


def pytest_configure(config: pytest.Config) -> None:
    """Load no installed handler plugin unless a test names it (HOOKBIRD_ENTRY_POINTS).

    A developer who installs their own plugin into .venv (docs/handlers.md says how)
    must not see it run inside the suite's workers and devs, which inherit this.
    """
    os.environ["HOOKBIRD_ENTRY_POINTS"] = "off"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("HOOKBIRD_TEST_REDIS_URL")
    if given:
        yield given
        return
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on the session's Redis, empty before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.flushall()
    client.close()
