"""The receiver's HTTP protocol: pushes answered from the parser, one write per response.

The socket tests run against both of the ``protocol`` fixture's protocols unless
they pin one: what a client sees must not depend on which path a push took.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from hookbird import keys
from hookbird.logs import configure_logging
from hookbird.settings import Settings
from hookbird.stored import unpack_push
from receiver.app import create_app
from receiver.endpoint import PushEndpoint
from receiver.protocol import ReceiverProtocol, _CoalescingTransport
from tests.commands.processes import wait_for
from tests.receiver.conftest import MakeReceiver
from tests.receiver.pushes import TOKEN, as_stored, push_body
from tests.support import uvicorn_in_thread

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recorder:
    """Stands in for the socket transport: records what reaches it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 8000) if name == "sockname" else default


async def _coalescing() -> tuple[_CoalescingTransport, Recorder]:
    recorder = Recorder()
    return _CoalescingTransport(recorder), recorder  # type: ignore[arg-type]


def test_head_and_body_are_one_write() -> None:
    async def scenario() -> list[bytes]:
        transport, recorder = await _coalescing()
        transport.write(HEAD)
        assert recorder.writes == []  # held back for the body
        transport.write(b"{}")
        await asyncio.sleep(0)
        return recorder.writes

    assert asyncio.run(scenario()) == [HEAD + b"{}"]


def test_a_head_without_a_body_in_the_same_turn_still_goes_out() -> None:
    """A streamed response or ``100 Continue``: the head leaves at the end of the turn."""

    async def scenario() -> list[list[bytes]]:
        transport, recorder = await _coalescing()
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        seen = [list(recorder.writes)]
        await asyncio.sleep(0)
        seen.append(list(recorder.writes))
        transport.write(b"later chunk")  # not a head: straight through
        seen.append(list(recorder.writes))
        return seen

    before, after_turn, after_chunk = asyncio.run(scenario())
    assert before == []
    assert after_turn == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    assert after_chunk == [b"HTTP/1.1 100 Continue\r\n\r\n", b"later chunk"]


def test_close_sends_a_held_head_first_and_other_calls_reach_the_transport() -> None:
    async def scenario() -> Recorder:
        transport, recorder = await _coalescing()
        assert transport.get_extra_info("sockname") == ("127.0.0.1", 8000)
        transport.writelines([HEAD, b"{", b"}"])  # head and body together: not held
        assert recorder.writes == [HEAD + b"{}"]
        transport.write(HEAD)
        transport.close()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.writes == [HEAD + b"{}", HEAD]
    assert recorder.closed


def test_the_receiver_writes_through_the_coalescing_transport(
    receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver's server runs on this protocol: a push's answer is one write."""
    reached: list[bytes] = []

    def write(self: Any, data: bytes) -> None:
        reached.append(bytes(data))

    monkeypatch.setattr(Recorder, "write", write)
    original = _CoalescingTransport.__init__

    def init(self: _CoalescingTransport, transport: Any) -> None:
        original(self, Recorder())  # type: ignore[arg-type]

    monkeypatch.setattr(_CoalescingTransport, "__init__", init)
    body = b'{"action":"test_webhook","administration_id":1,"token":"x"}'
    with connect(receiver) as connection:
        connection.send(request(body))
        wait_for(lambda: reached, timeout=5, message="the answer to reach the transport")
    assert len(reached) == 1
    assert reached[0].startswith(b"HTTP/1.1 200 ")
    assert reached[0].endswith(b'\r\n\r\n{"status":"test"}')


# --- pushes answered by the protocol, over real sockets ---------------------------------


def request(body: bytes, *extra: bytes, version: bytes = b"1.1") -> bytes:
    head = [
        b"POST /webhooks/moneybird HTTP/" + version,
        b"host: hookbird.test",
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class Connection:
    """One client connection that reads responses by their ``content-length``."""

    def __init__(self, base: str, send_buffer: int | None = None) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        if send_buffer is not None:  # set before connecting, so the kernel keeps to it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        self.sock.settimeout(10)
        self.sock.connect((host, int(port)))
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def head(self) -> bytes:
        """The next response head (an interim ``100 Continue`` is a whole response)."""
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head

    def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """The next response: status, headers by lower-case name, body."""
        status_line, *lines = self.head().split(b"\r\n")
        headers = dict(line.lower().split(b": ", 1) for line in lines)
        length = int(headers[b"content-length"])
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(status_line.split()[1]), headers, body

    def closed_by_server(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _fill(self) -> None:
        more = self.sock.recv(65536)
        if not more:
            raise ConnectionError(f"closed by the server; unread: {self.buffer!r}")
        self.buffer += more

    def close(self) -> None:
        self.sock.close()


@contextmanager
def connect(base: str, send_buffer: int | None = None) -> Iterator[Connection]:
    connection = Connection(base, send_buffer)
    try:
        yield connection
    finally:
        connection.close()


def stored(client: redis.Redis, body: bytes) -> dict[str, Any]:
    event_id = json.loads(body)["event_id"]
    return unpack_push(client.get(keys.event_key(event_id)))


def held_in_redis(client: redis.Redis) -> bool:
    """Whether Redis holds a client's command back (a write while CLIENT PAUSE lasts)."""
    return int(client.info("clients")["blocked_clients"]) > 0


def refuses_connections(base: str) -> bool:
    """Whether the server has stopped listening (the first step of a graceful shutdown)."""
    host, port = base.removeprefix("http://").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("protocol", [ReceiverProtocol])
def test_a_push_that_arrives_whole_is_answered_without_the_asgi_app(
    receiver: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push in one read goes from the parser to the endpoint's ``answer``; one whose
    body comes in a second read is handed to the ASGI app, which waits for the rest."""
    asgi_calls: list[str] = []
    asgi_endpoint = PushEndpoint.__call__

    async def counted(self: PushEndpoint, scope: Any, receive: Any, send: Any) -> None:
        asgi_calls.append(scope["path"])
        await asgi_endpoint(self, scope, receive, send)

    monkeypatch.setattr(PushEndpoint, "__call__", counted)
    reads: list[bytes] = []
    read = ReceiverProtocol.data_received

    def counted_read(self: ReceiverProtocol, data: bytes) -> None:
        reads.append(data)
        read(self, data)

    monkeypatch.setattr(ReceiverProtocol, "data_received", counted_read)
    whole, split = push_body(entity_id="1"), push_body(entity_id="2")
    with connect(receiver) as connection:
        connection.send(request(whole))
        status, _, answer = connection.response()
        assert (status, json.loads(answer)["status"]) == (200, "accepted")
        assert stored(redis_client, answer)["body"] == as_stored(whole)
        assert asgi_calls == []

        data = request(split)
        connection.send(data[:-100])
        wait_for(lambda: b"".join(reads).endswith(data[:-100]), timeout=10, message="a read")
        connection.send(data[-100:])
        status, _, answer = connection.response()
        assert (status, json.loads(answer)["status"]) == (200, "accepted")
        assert stored(redis_client, answer)["body"] == as_stored(split)
        assert asgi_calls == ["/webhooks/moneybird"]


def test_pipelined_pushes_are_answered_in_order(receiver: str, redis_client: redis.Redis) -> None:
    """Three requests in one write, the first held up by Redis and the second a
    ``test_webhook`` that needs no Redis: the answers still come in request order."""
    first, second = push_body(entity_id="1"), push_body(entity_id="2")
    test_webhook = b'{"action":"test_webhook","administration_id":"123456789","token":"x"}'
    redis_client.client_pause(300, all=False)
    with connect(receiver) as connection:
        connection.send(request(first) + request(test_webhook) + request(second))
        answers = [connection.response() for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 200]
    assert answers[1][2] == b'{"status":"test"}'
    assert stored(redis_client, answers[0][2])["body"] == as_stored(first)
    assert stored(redis_client, answers[2][2])["body"] == as_stored(second)
    assert redis_client.llen(keys.rq_queue_key("hookbird")) == 2


def test_responses_are_uvicorns(receiver: str) -> None:
    """The same head either way: uvicorn's default headers (``server`` is on in the
    tests' uvicorn), JSON and its length."""
    with connect(receiver) as connection:
        connection.send(request(push_body()))
        status, headers, body = connection.response()
    assert status == 200
    assert set(headers) == {b"date", b"server", b"content-type", b"content-length"}
    assert headers[b"server"] == b"uvicorn"
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"content-length"]) == len(body)


@pytest.mark.parametrize(
    ("version", "extra"), [(b"1.1", (b"connection: close",)), (b"1.0", ())], ids=["close", "1.0"]
)
def test_a_connection_the_client_does_not_keep_is_closed_after_the_answer(
    receiver: str, redis_client: redis.Redis, version: bytes, extra: tuple[bytes, ...]
) -> None:
    with connect(receiver) as connection:
        connection.send(request(push_body(), *extra, version=version))
        status, headers, answer = connection.response()
        assert status == 200
        assert headers[b"connection"] == b"close"
        assert connection.closed_by_server()
    assert stored(redis_client, answer)["action"] == "sales_invoice_state_changed_to_paid"


@pytest.mark.parametrize(
    ("allowed", "remote_addr"),
    [("127.0.0.1", "203.0.113.7"), ("10.1.2.3", "127.0.0.1")],
    ids=["trusted-proxy", "untrusted-peer"],
)
def test_the_remote_address_follows_uvicorns_proxy_rules(
    make_receiver: MakeReceiver, redis_client: redis.Redis, allowed: str, remote_addr: str
) -> None:
    """``X-Forwarded-For`` counts when the peer is in ``forwarded_allow_ips``, not otherwise."""
    proxied = make_receiver(uvicorn_config={"forwarded_allow_ips": allowed})
    with proxied as base, connect(base) as connection:
        connection.send(request(push_body(), b"x-forwarded-for: 203.0.113.7, 127.0.0.1"))
        status, _, answer = connection.response()
    assert status == 200
    assert stored(redis_client, answer)["remote_addr"] == remote_addr


def test_expect_100_continue_gets_its_interim_answer(
    receiver: str, redis_client: redis.Redis
) -> None:
    body = push_body()
    data = request(body, b"expect: 100-continue")
    head_end = data.index(b"\r\n\r\n") + 4
    with connect(receiver) as connection:
        connection.send(data[:head_end])
        assert connection.head() == b"HTTP/1.1 100 Continue"
        connection.send(data[head_end:])
        status, _, answer = connection.response()
    assert status == 200
    assert stored(redis_client, answer)["body"] == as_stored(body)


def test_a_client_that_leaves_before_its_answer_still_has_its_push_queued(
    receiver: str, redis_client: redis.Redis
) -> None:
    """Redis holds the push up while the client hangs up: it is stored all the same,
    and the receiver goes on answering."""
    redis_client.client_pause(10000, all=False)
    try:
        with connect(receiver) as connection:
            connection.send(request(push_body(entity_id="101")))
            wait_for(lambda: held_in_redis(redis_client), timeout=10, message="Redis to hold it")
    finally:
        redis_client.client_unpause()
    queue = keys.rq_queue_key("hookbird")
    wait_for(lambda: redis_client.llen(queue), timeout=5, message="the push to be queued")
    assert redis_client.llen(queue) == 1
    with connect(receiver) as connection:
        connection.send(request(push_body(entity_id="102")))
        assert connection.response()[0] == 200


@pytest.mark.parametrize("protocol", [ReceiverProtocol])
def test_an_unexpected_error_is_a_500_and_the_connection_goes_on(
    receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = PushEndpoint.answer
    failures = [RuntimeError("a bug in hookbird")]

    async def failing_once(self: PushEndpoint, *args: Any) -> Any:
        if failures:
            raise failures.pop()
        return await answer(self, *args)

    monkeypatch.setattr(PushEndpoint, "answer", failing_once)
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    try:
        with connect(receiver) as connection:
            connection.send(request(push_body(entity_id="1")))
            status, _, body = connection.response()
            assert (status, json.loads(body)) == (
                500,
                {"status": "error", "error": "internal error"},
            )
            connection.send(request(push_body(entity_id="2")))
            assert connection.response()[0] == 200
    finally:
        configure_logging("info", "json")
    logged = [json.loads(line) for line in buffer.getvalue().splitlines()]
    failed = [line for line in logged if line["event"] == "push failed: unexpected error"]
    assert len(failed) == 1
    assert "RuntimeError: a bug in hookbird" in failed[0]["exception"]


def test_a_shutdown_lets_the_answer_to_a_push_in_flight_go_out(
    redis_url: str, redis_client: redis.Redis, protocol: type[ReceiverProtocol]
) -> None:
    """uvicorn's graceful shutdown waits for the push Redis is holding up, answers it
    with ``connection: close`` and only then stops."""
    app = create_app(Settings(redis_url=redis_url, webhook_token=TOKEN))
    with uvicorn_in_thread(app, http=protocol) as (base, server):
        redis_client.client_pause(10000, all=False)
        try:
            with connect(base) as connection:
                connection.send(request(push_body()))
                wait_for(
                    lambda: held_in_redis(redis_client), timeout=10, message="Redis to hold it"
                )
                server.should_exit = True
                wait_for(lambda: refuses_connections(base), timeout=10, message="the shutdown")
                redis_client.client_unpause()
                status, headers, answer = connection.response()
                assert status == 200
                assert headers[b"connection"] == b"close"
                assert connection.closed_by_server()
        finally:
            redis_client.client_unpause()
    assert stored(redis_client, answer)["body"] == as_stored(push_body())
    assert not [t for t in threading.enumerate() if t.name.startswith("uvicorn-")]
