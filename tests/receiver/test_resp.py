"""The Enqueuer's own Redis connections, against real redis-servers and real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird import keys
from hookbird.redis_server import RedisServer
from hookbird.settings import Settings
from receiver.app import create_app
from receiver.resp import RedisLink, ReplyError, pack
from tests.receiver.pushes import TOKEN, push_body
from tests.support import serve_in_thread

URL = "/webhooks/moneybird"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (with a unix socket too), which the test may kill: with
    every write on disk before it is answered, as a push acknowledged just before a kill -9
    must survive it (``everysec`` would lose the last second's)."""
    server = RedisServer(
        tmp_path / "redis",
        appendfsync="always",
        extra_args=["--unixsocket", str(tmp_path / "redis.sock")],
    ).start()
    yield server
    server.kill()


def test_pack_is_resp() -> None:
    """Commands go out as RESP arrays of bulk strings."""
    assert pack(b"SET", "k", 5) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\n5\r\n"


def test_call_returns_replies_and_raises_error_replies(redis_url: str) -> None:
    """Integers, bulk strings, arrays and nil come back as Python values; errors raise."""

    async def scenario() -> None:
        link = RedisLink(redis_url, timeout=2)
        try:
            assert await link.call("SET", "hookbird:test", "v") == b"OK"
            assert await link.call("GET", "hookbird:test") == b"v"
            assert await link.call("GET", "hookbird:missing") is None
            assert await link.call("EVAL", "return {1, 'a'}", 0) == [1, b"a"]
            with pytest.raises(ReplyError) as raised:
                await link.call("EVALSHA", "0" * 40, 0)
            assert raised.value.message.startswith("NOSCRIPT")
            assert await link.call("DEL", "hookbird:test") == 1  # still in step after an error
        finally:
            await link.aclose()

    asyncio.run(scenario())


def test_redis_killed_then_restarted(own_redis: RedisServer) -> None:
    """While Redis is down a call fails with ConnectionError; once it is back the next works."""

    async def scenario() -> None:
        link = RedisLink(own_redis.url, timeout=1)
        try:
            assert await link.call("PING") == b"PONG"
            own_redis.kill()
            await asyncio.sleep(0.05)
            with pytest.raises(ConnectionError):
                await link.call("PING")
            own_redis.start()
            assert await link.call("PING") == b"PONG"
        finally:
            await link.aclose()

    asyncio.run(scenario())


def test_receiver_answers_503_while_redis_is_down_and_200_after(own_redis: RedisServer) -> None:
    """Redis killed: pushes get 503; restarted: the very next push gets 200 and a job."""
    settings = Settings(redis_url=own_redis.url, webhook_token=TOKEN, redis_timeout=0.5)
    with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
        assert http.post(base + URL, content=push_body(state="a")).status_code == 200
        own_redis.kill()
        assert http.post(base + URL, content=push_body(state="b")).status_code == 503
        assert http.post(base + URL, content=push_body(state="c")).status_code == 503
        own_redis.start()
        assert http.post(base + URL, content=push_body(state="b")).status_code == 200
    client = redis.Redis.from_url(own_redis.url)
    assert client.llen(keys.rq_queue_key("hookbird")) == 2
    client.close()


def test_password_user_and_database_from_the_url(own_redis: RedisServer) -> None:
    """A URL's password, username and database are used; a wrong password is an error."""
    admin = redis.Redis(port=own_redis.port)
    admin.acl_setuser(
        "hookbird", enabled=True, passwords=["+s3cret"], keys=["*"], categories=["+@all"]
    )
    admin.config_set("requirepass", "adminpw")
    admin.close()
    host = f"127.0.0.1:{own_redis.port}"

    async def scenario() -> None:
        for url in (f"redis://:adminpw@{host}/3", f"redis://hookbird:s3cret@{host}/3"):
            link = RedisLink(url, timeout=2)
            assert await link.call("SET", "hookbird:where", url) == b"OK"
            await link.aclose()
        wrong = RedisLink(f"redis://hookbird:nope@{host}/3", timeout=2)
        with pytest.raises(ReplyError):
            await wrong.call("PING")

    asyncio.run(scenario())
    client = redis.Redis(port=own_redis.port, db=3, password="adminpw")
    assert client.get("hookbird:where") == f"redis://hookbird:s3cret@{host}/3".encode()
    assert redis.Redis(port=own_redis.port, password="adminpw").get("hookbird:where") is None
    client.close()


def test_receiver_with_a_password_protected_redis(own_redis: RedisServer) -> None:
    """With REDIS_URL carrying a password the receiver stores and enqueues as usual."""
    admin = redis.Redis(port=own_redis.port)
    admin.config_set("requirepass", "pw with space")
    admin.close()
    url = f"redis://:pw%20with%20space@127.0.0.1:{own_redis.port}/2"
    settings = Settings(redis_url=url, webhook_token=TOKEN)
    with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
        response = http.post(base + URL, content=push_body())
        assert response.status_code == 200
        assert response.json()["status"] == "accepted"
    client = redis.Redis.from_url(url)
    assert client.llen(keys.rq_queue_key("hookbird")) == 1
    client.close()


def test_unix_socket_url(own_redis: RedisServer, tmp_path: Path) -> None:
    """``unix://`` URLs connect over the socket, with the database from ``?db=``."""

    async def scenario() -> None:
        link = RedisLink(f"unix://{tmp_path / 'redis.sock'}?db=5", timeout=2)
        assert await link.call("SET", "hookbird:via", "unix") == b"OK"
        await link.aclose()

    asyncio.run(scenario())
    client = redis.Redis(port=own_redis.port, db=5)
    assert client.get("hookbird:via") == b"unix"
    client.close()


async def _serve(reply: bytes, *, chunk: int, stall: bool = False) -> asyncio.Server:
    """A server that answers every command with ``reply`` in ``chunk``-byte pieces."""
    first = True

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal first
        try:
            while await reader.read(65536):
                if stall and first:
                    first = False
                    continue  # never answers the first command
                for start in range(0, len(reply), chunk):
                    writer.write(reply[start : start + chunk])
                    await writer.drain()
                    await asyncio.sleep(0.001)
        finally:  # also when the test's loop ends first and cancels this
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_reply_split_across_reads() -> None:
    """A reply arriving a few bytes at a time is put together whole."""
    value = b"x" * 100_000
    reply = b"*2\r\n:1\r\n$%d\r\n%s\r\n" % (len(value), value)

    async def scenario() -> None:
        server = await _serve(reply, chunk=4093)
        port = server.sockets[0].getsockname()[1]
        link = RedisLink(f"redis://127.0.0.1:{port}", timeout=5)
        try:
            assert await link.call("EVALSHA", "x", 0) == [1, value]
            assert await link.call("EVALSHA", "x", 0) == [1, value]
        finally:
            await link.aclose()
            server.close()

        server = await _serve(b"*2\r\n:1\r\n$5\r\nhello\r\n", chunk=1)
        port = server.sockets[0].getsockname()[1]
        link = RedisLink(f"redis://127.0.0.1:{port}", timeout=5)
        try:
            assert await link.call("PING") == [1, b"hello"]
        finally:
            await link.aclose()
            server.close()

    asyncio.run(scenario())


def test_a_timed_out_call_never_leaves_its_reply_for_the_next() -> None:
    """After a timeout the connection is dropped, so a late reply cannot answer another call."""

    async def scenario() -> None:
        server = await _serve(b"+late\r\n", chunk=64, stall=True)
        port = server.sockets[0].getsockname()[1]
        link = RedisLink(f"redis://127.0.0.1:{port}", timeout=0.2)
        try:
            with pytest.raises(TimeoutError):
                await link.call("PING")
            assert await link.call("PING") == b"late"
        finally:
            await link.aclose()
            server.close()

    asyncio.run(scenario())
