"""hookbird.outage: a client given ride_out waits out a Redis restart, within the grace."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import structlog

from hookbird.outage import Outage, OutageRetry, RedisGone, outage_of, ride_out
from hookbird.redis_server import RedisServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis") as srv:
        yield srv


def restart_later(server: RedisServer, after: float) -> threading.Thread:
    def restart() -> None:
        time.sleep(after)
        server.start()

    thread = threading.Thread(target=restart)
    thread.start()
    return thread


def test_a_command_waits_for_redis_to_come_back(server: RedisServer) -> None:
    """Killed, then back 1.5 s later: the command sent meanwhile gets its answer."""
    client = ride_out(redis.Redis.from_url(server.url), Outage(30, "test"))
    try:
        client.set("k", "v")
        server.kill()
        thread = restart_later(server, 1.5)
        with structlog.testing.capture_logs() as logs:
            assert client.get("k") == b"v"  # AOF kept it
        thread.join()
    finally:
        client.close()
    events = [e["event"] for e in logs]
    assert events == ["Redis unreachable", "Redis reachable again"]
    assert logs[1]["seconds"] >= 1.0


def test_a_restart_between_two_commands_is_no_outage(server: RedisServer) -> None:
    """The pooled connection Redis closed fails once and reconnects: nothing is logged."""
    client = ride_out(redis.Redis.from_url(server.url), Outage(30, "test"))
    try:
        client.set("k", "v")
        server.kill()
        server.start()
        with structlog.testing.capture_logs() as logs:
            assert client.get("k") == b"v"
    finally:
        client.close()
    assert logs == []


def test_past_the_grace_every_command_raises_redis_gone_at_once(server: RedisServer) -> None:
    """Redis away longer than the grace: RedisGone, then at once on every later command."""
    outage = Outage(0.5, "test")
    client = ride_out(redis.Redis.from_url(server.url), outage)
    gave_up: list[bool] = []
    outage.on_give_up = lambda: gave_up.append(True)
    try:
        client.ping()
        server.kill()
        with pytest.raises(RedisGone, match="HOOKBIRD_REDIS_OUTAGE_GRACE"):
            client.get("k")
        assert outage.gave_up
        assert gave_up == [True]
        server.start()  # too late: the process is on its way out
        began = time.monotonic()
        with pytest.raises(RedisGone):
            client.get("k")
        assert time.monotonic() - began < 0.5
        assert gave_up == [True]
    finally:
        client.close()


def test_connections_share_their_process_outage() -> None:
    """redis-py copies the retry into each connection; the outage stays one per process."""
    outage = Outage(10, "test")
    client = ride_out(redis.Redis(), outage)
    retry = copy.deepcopy(client.get_retry())
    assert isinstance(retry, OutageRetry)
    assert retry.outage is outage
    assert outage_of(client) is outage
    assert outage_of(redis.Redis()) is None
    client.close()


def test_settled_waits_the_given_time_after_an_outage() -> None:
    """settled(s): False during an outage and for s seconds after it, True before any."""
    now = [100.0]
    outage = Outage(60, "test", clock=lambda: now[0])
    assert outage.settled(5)
    with structlog.testing.capture_logs():
        outage.failed(ConnectionError("down"))
        assert not outage.settled(5)
        now[0] += 10
        outage.reached()
    now[0] += 4
    assert not outage.settled(5)
    now[0] += 1
    assert outage.settled(5)


def test_an_outage_not_seen_counts_as_ended_now_unless_one_is_on() -> None:
    """unseen_until_now(): settled(s) waits s seconds; an outage going on stays on."""
    now = [100.0]
    outage = Outage(60, "test", clock=lambda: now[0])
    outage.unseen_until_now()
    now[0] += 4
    assert not outage.settled(5)
    now[0] += 1
    assert outage.settled(5)
    with structlog.testing.capture_logs():
        outage.failed(ConnectionError("down"))
        outage.unseen_until_now()
        assert outage.down
        now[0] += 10
        outage.reached()
    assert not outage.settled(5)
