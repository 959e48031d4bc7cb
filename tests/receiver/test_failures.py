"""When Redis fails, the receiver answers 503 and leaves nothing half-written."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird import keys
from hookbird.logs import configure_logging
from hookbird.redis_server import RedisServer
from hookbird.settings import Settings
from receiver.app import create_app
from tests.receiver.conftest import MakeReceiver
from tests.receiver.pushes import SECRET, TOKEN, push_body, signature_header
from tests.support import serve_in_thread

URL = "/webhooks/moneybird"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, which the test may kill."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


def test_redis_down_gets_503_with_retry_after_then_recovers(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis killed: 503 + Retry-After and readyz 503; restarted on its data: 200 again."""
    settings = Settings(
        redis_url=own_redis.url, webhook_token=TOKEN, redis_timeout=0.5, retry_after=17
    )
    with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
        assert http.post(base + URL, content=push_body(state="a")).status_code == 200
        own_redis.kill()

        response = http.post(base + URL, content=push_body(state="b"))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "17"
        assert http.get(base + "/readyz").status_code == 503
        assert http.get(base + "/healthz").status_code == 200
        assert (
            'hookbird_pushes_total{outcome="unavailable"} 1.0' in http.get(base + "/metrics").text
        )

        own_redis.start()  # same port, same data directory: the AOF is replayed
        assert http.get(base + "/readyz").status_code == 200
        retried = http.post(base + URL, content=push_body(state="b"))
        assert retried.status_code == 200
        assert retried.json()["status"] == "accepted"

    client = redis.Redis.from_url(own_redis.url)
    assert client.llen(keys.rq_queue_key("hookbird")) == 2
    client.close()


def test_redis_out_of_memory_gets_503_and_writes_nothing(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """With noeviction and memory full, the script writes no key at all and we answer 503."""
    with make_receiver() as base, httpx2.Client(timeout=10) as http:
        redis_client.config_set("maxmemory", 1)
        try:
            response = http.post(base + URL, content=push_body())
        finally:
            redis_client.config_set("maxmemory", 0)
        assert response.status_code == 503
        assert "retry-after" in response.headers
        assert redis_client.keys("*") == []
        assert http.post(base + URL, content=push_body()).json()["status"] == "accepted"


def test_flushed_script_cache_is_reloaded(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """A Redis restart forgets the Lua script; the next push loads it again and succeeds."""
    with make_receiver() as base, httpx2.Client(timeout=10) as http:
        assert http.post(base + URL, content=push_body(state="1")).status_code == 200
        redis_client.script_flush()
        assert http.post(base + URL, content=push_body(state="2")).status_code == 200
    assert redis_client.llen(keys.rq_queue_key("hookbird")) == 2


def test_no_secret_reaches_the_logs(make_receiver: MakeReceiver) -> None:
    """Tokens, signing secrets and signatures never appear in any log line."""
    buffer = io.StringIO()
    configure_logging("debug", "json", secrets=(TOKEN, SECRET), stream=buffer)
    body = push_body()
    header = signature_header(body)
    v1 = header.split("v1=")[1]
    try:
        with (
            make_receiver(webhook_secrets=(SECRET,), log_each_push=True) as base,
            httpx2.Client() as http,
        ):
            http.post(base + URL, content=body, headers={"Moneybird-Signature": header})
            http.post(base + URL, content=body, headers={"Moneybird-Signature": header})
            http.post(
                base + URL,
                content=push_body(webhook_token=TOKEN + "x"),
                headers={"Moneybird-Signature": header, "Authorization": "Bearer abc"},
            )
            http.post(
                base + URL,
                content=b'{"action":"test_webhook","administration_id":"1",'
                b'"token":"' + TOKEN.encode() + b'"}',
            )
    finally:
        configure_logging("info", "json")
    text = buffer.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "push accepted" in events
    assert "push duplicate" in events
    assert "push refused" in events
    assert "test_webhook received" in events
    for secret in (TOKEN, SECRET, v1, "Bearer abc"):
        assert secret not in text


def test_a_redis_outage_is_logged_once_when_it_begins_and_once_when_it_ends(
    own_redis: RedisServer,
) -> None:
    """Five pushes answered 503 while Redis is down: two log lines, not five."""
    settings = Settings(redis_url=own_redis.url, webhook_token=TOKEN, redis_timeout=0.5)
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    try:
        with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
            assert http.post(base + URL, content=push_body(state="a")).status_code == 200
            own_redis.kill()
            for n in range(5):
                answer = http.post(base + URL, content=push_body(state=f"down-{n}"))
                assert answer.status_code == 503
            own_redis.start()
            assert http.post(base + URL, content=push_body(state="b")).status_code == 200
            assert http.post(base + URL, content=push_body(state="c")).status_code == 200
    finally:
        configure_logging("info", "json")
    records = [json.loads(line) for line in buffer.getvalue().splitlines() if line[:1] == "{"]
    redis_lines = [r for r in records if str(r["event"]).startswith("Redis")]
    assert [r["event"] for r in redis_lines] == [
        "Redis unreachable: pushes answered 503 until it is back",
        "Redis reachable again",
    ]
    assert redis_lines[1]["seconds"] >= 0
