"""Clients on a redis+sentinel:// URL follow a failover without being rebuilt."""

from __future__ import annotations

import asyncio

import pytest
import redis

from hookbird.redis_url import async_client, sync_client
from hookbird.sentinel_cluster import SentinelCluster
from receiver.resp import RedisLink, ReplyError
from tests.commands.processes import wait_for


def on(port: int) -> redis.Redis:
    return redis.Redis(port=port, socket_timeout=5)


def test_sync_client_writes_to_the_new_primary_after_a_failover(
    cluster: SentinelCluster, primary: redis.Redis
) -> None:
    """Same client before and after SENTINEL FAILOVER; its write lands on the new primary."""
    primary.set("before", 1)
    primary.wait(1, 5000)  # replicated: SENTINEL FAILOVER does not wait for it
    new = cluster.failover()
    wait_for(lambda: _set_or_none(primary, "after"), message="a write after the failover")
    with on(new) as direct:
        assert direct.get("after") == b"1"
        assert direct.get("before") == b"1"  # replicated before the failover


def test_async_client_writes_to_the_new_primary_after_a_failover(
    cluster: SentinelCluster, primary: redis.Redis
) -> None:
    """The asyncio client (the receiver's) follows the failover too."""

    async def scenario() -> int:
        client = async_client(cluster.url, socket_timeout=5)
        try:
            await client.set("before", 1)
            await client.wait(1, 5000)
            new = await asyncio.to_thread(cluster.failover)
            for _ in range(100):
                try:
                    await client.set("after", 1)
                    return new
                except redis.exceptions.ConnectionError:
                    await asyncio.sleep(0.1)
            raise AssertionError("no write succeeded after the failover")
        finally:
            await client.aclose()

    new = asyncio.run(scenario())
    with on(new) as direct:
        assert direct.get("after") == b"1"


def test_redis_link_reconnects_to_the_new_primary_after_a_failover(
    cluster: SentinelCluster, primary: redis.Redis
) -> None:
    """The receiver's own connections: READONLY from the demoted primary drops them all,
    and the next call asks the Sentinels and writes to the new primary."""

    async def scenario() -> tuple[int, list[str]]:
        link = RedisLink(cluster.url, timeout=5)
        errors: list[str] = []
        try:
            await link.call("SET", "before", "1")
            new = await asyncio.to_thread(cluster.failover)
            for _ in range(100):
                try:
                    await link.call("SET", "after", "1")
                    return new, errors
                except (ReplyError, OSError, TimeoutError) as exc:
                    errors.append(repr(exc))
                    await asyncio.sleep(0.1)
            raise AssertionError(f"no write succeeded after the failover: {errors}")
        finally:
            await link.aclose()

    new, errors = asyncio.run(scenario())
    assert len(errors) <= 1, errors  # at most the one call on the demoted primary
    with on(new) as direct:
        assert direct.get("after") == b"1"


def _set_or_none(client: redis.Redis, key: str) -> bool:
    try:
        return bool(client.set(key, 1))
    except redis.exceptions.ConnectionError:
        return False


def test_sync_client_on_a_cluster_url_reaches_the_primary(cluster: SentinelCluster) -> None:
    """The client the CLI and workers use talks to the server the Sentinels name."""
    with sync_client(cluster.url) as client:
        assert client.info("replication")["role"] == "master"
        assert client.info("server")["tcp_port"] == cluster.primary_port()


def test_redis_link_closes_a_connection_answered_readonly(cluster: SentinelCluster) -> None:
    """A server that answers READONLY was demoted: the link keeps no connection to it,
    so its next call asks the Sentinels again instead of failing until Redis restarts."""
    replica = cluster.replicas()[0]

    async def scenario() -> None:
        link = RedisLink(f"redis://127.0.0.1:{replica.port}/0?client_name=demoted", timeout=5)
        try:
            with pytest.raises(ReplyError, match=r"^READONLY"):
                await link.call("SET", "key", "1")
            await asyncio.to_thread(
                wait_for, lambda: not named(replica.port, "demoted"), 10, "the link to close it"
            )
        finally:
            await link.aclose()

    asyncio.run(scenario())


def named(port: int, name: str) -> list[str]:
    """The client connections on the server at ``port`` named ``name``."""
    with on(port) as client:
        return [c["addr"] for c in client.client_list() if c.get("name") == name]
