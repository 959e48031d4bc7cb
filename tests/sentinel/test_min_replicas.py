"""HOOKBIRD_MIN_REPLICAS: 200 only once WAIT says the replicas have the push, else 503."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird import keys
from hookbird.redis_server import RedisServer
from hookbird.settings import Settings, SettingsError
from receiver.app import create_app
from tests.support import serve_in_thread
from tests.workers.conftest import TOKEN, push_body, wait_for


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    """A primary and one replica of it (no Sentinels: WAIT needs none)."""
    root = tmp_path_factory.mktemp("replicated")
    quick = ["--repl-diskless-sync-delay", "0"]
    with RedisServer(root / "primary", extra_args=quick) as primary:
        replica = RedisServer(
            root / "replica", extra_args=[*quick, "--replicaof", "127.0.0.1", str(primary.port)]
        )
        with replica:
            yield primary, replica


def replicas_online(port: int) -> int:
    with redis.Redis(port=port) as client:
        info = client.info("replication")
    return sum(
        1
        for key, value in info.items()
        if key.startswith("slave") and isinstance(value, dict) and value["state"] == "online"
    )


def in_sync(primary: RedisServer, replica: RedisServer) -> bool:
    """The replica is online and done writing its first AOF (until then Redis refuses to
    shut it down, and the test's end would wait 10 s for it)."""
    if replicas_online(primary.port) != 1:
        return False
    with redis.Redis(port=replica.port) as client:
        info = client.info("persistence")
    return not (info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"])


def post(http: httpx2.Client, base: str, number: int) -> httpx2.Response:
    return http.post(
        f"{base}/webhooks/moneybird",
        content=push_body(entity_id=str(number)),
        headers={"Idempotency-Key": f"replicated-{number}"},
    )


def test_push_waits_for_the_replica_and_is_refused_without_it(
    pair: tuple[RedisServer, RedisServer], tmp_path: Path
) -> None:
    """MIN_REPLICAS=1: 200 with the replica up (and the push is on it); 503 + Retry-After
    with it stopped; its retry answered 200 once the replica is back and has it."""
    primary, replica = pair
    wait_for(lambda: in_sync(primary, replica), 30, "the replica in sync")
    settings = Settings(
        redis_url=primary.url,
        webhook_token=TOKEN,
        min_replicas=1,
        min_replicas_timeout=1.5,  # under 2 s (HOOKBIRD_REDIS_TIMEOUT); a loaded machine needs it
        retry_after=7,
    )
    with (
        serve_in_thread(create_app(settings)) as base,
        httpx2.Client(timeout=10) as http,
    ):
        first = post(http, base, 1)
        assert first.status_code == 200, first.text
        with redis.Redis(port=replica.port) as on_replica:
            assert on_replica.exists(keys.event_key(first.json()["event_id"]))

        replica.stop()
        refused = post(http, base, 2)
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "7"

        replica.start()
        wait_for(lambda: in_sync(primary, replica), 30, "the replica back in sync")
        retried = post(http, base, 2)
        assert retried.status_code == 200, retried.text
        with redis.Redis(port=replica.port) as on_replica:
            assert on_replica.exists(keys.event_key(retried.json()["event_id"]))


def test_min_replicas_off_acknowledges_without_replicas(
    pair: tuple[RedisServer, RedisServer],
) -> None:
    """The default (0): a push is answered 200 once the primary has it, replica or not."""
    primary, replica = pair
    replica.stop()
    try:
        settings = Settings(redis_url=primary.url, webhook_token=TOKEN)
        with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
            assert post(http, base, 3).status_code == 200
    finally:
        replica.start()
        wait_for(lambda: in_sync(primary, replica), 30, "the replica back in sync")


def test_wait_timeout_must_be_below_the_redis_timeout() -> None:
    """A WAIT longer than the receiver waits for Redis at all is refused at start."""
    with pytest.raises(SettingsError, match="HOOKBIRD_MIN_REPLICAS_TIMEOUT"):
        Settings(min_replicas=1, min_replicas_timeout=2, redis_timeout=2)
    Settings(min_replicas=0, min_replicas_timeout=5, redis_timeout=2)  # off: not checked
