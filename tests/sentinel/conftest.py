"""A real primary, replica and three Sentinels (``redis-server --sentinel``) per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from hookbird.redis_url import sync_client
from hookbird.sentinel_cluster import SentinelCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelCluster]:
    with SentinelCluster(tmp_path_factory.mktemp("sentinel")) as started:
        yield started


@pytest.fixture
def primary(cluster: SentinelCluster) -> Iterator[redis.Redis]:
    """A client on the cluster's URL, on an empty primary (flushed before and after)."""
    cluster.wait_agreed()
    client = sync_client(cluster.url, socket_timeout=5)
    client.flushall()
    yield client
    client.flushall()
    client.close()
