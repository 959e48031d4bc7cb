"""The receiver's HTTP edge: timeouts, caps and closes that hold against hostile clients.

Every test speaks raw HTTP over a real socket to the receiver under uvicorn, on both
of the ``protocol`` fixture's paths (pushes answered from the parser, and the ASGI
way), unless it tests uvicorn's own protocol, the fallback when its internals change.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import redis
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from hookbird.logs import configure_logging
from hookbird.settings import Settings
from receiver.app import create_app
from receiver.protocol import ReceiverProtocol
from receiver.server import missing_internals, protocol_supported, uvicorn_options
from tests.commands.processes import wait_for
from tests.receiver.conftest import MakeReceiver
from tests.receiver.pushes import SECRET_KEY, TOKEN, as_stored, push_body
from tests.receiver.test_protocol import Connection, connect, request, stored
from tests.support import serve_in_thread


def until_closed(connection: Connection, within: float) -> bytes | None:
    """Everything the server still sends before it closes the connection, or None
    when it keeps it open for ``within`` seconds."""
    connection.sock.settimeout(within)
    data = connection.buffer
    connection.buffer = b""
    try:
        while True:
            more = connection.sock.recv(65536)
            if not more:
                return data
            data += more
    except TimeoutError:
        return None
    except ConnectionResetError:
        return data


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        configure_logging("info", "json")


def logged(buffer: io.StringIO, event: str) -> list[dict[str, Any]]:
    return [line for line in logs_of(buffer) if line["event"] == event]


# --- timeouts ---------------------------------------------------------------------------


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(
    make_receiver: MakeReceiver,
) -> None:
    with make_receiver(idle_timeout=0.5) as base, connect(base) as connection:
        started = time.monotonic()
        assert until_closed(connection, within=5) == b""
        assert time.monotonic() - started >= 0.4


def test_line_breaks_trickled_before_a_request_do_not_hold_the_connection(
    make_receiver: MakeReceiver,
) -> None:
    """Empty lines between requests are allowed and skipped; sending one every 0.1 s
    must not keep an idle connection open."""
    with make_receiver(idle_timeout=0.5, header_timeout=1) as base, connect(base) as connection:
        deadline = time.monotonic() + 6
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                connection.send(b"\r\n")
            except OSError:
                closed = True
                break
            closed = until_closed(connection, within=0.1) is not None
        assert closed


def test_a_head_trickled_a_byte_at_a_time_gets_408_and_the_connection_closes(
    make_receiver: MakeReceiver,
) -> None:
    with make_receiver(header_timeout=0.6) as base, connect(base) as connection:
        connection.send(b"POST /webhooks/moneybird HTTP/1.1\r\nhost: hookbird.test\r\nx-slow: ")
        started = time.monotonic()
        answer = None
        while answer is None and time.monotonic() - started < 8:
            try:
                connection.send(b"a")
            except OSError:
                break
            answer = until_closed(connection, within=0.2)
        assert answer is not None, "the connection is still open"
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert b"\r\nconnection: close\r\n" in answer
        assert time.monotonic() - started < 5


def test_after_a_body_timeout_the_connection_closes_and_nothing_more_is_read(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """A 408 for a body that stopped coming closes the connection: a request sent
    after it is never read as the rest of the body, or answered."""
    body = push_body()
    with make_receiver(body_timeout=0.5) as base, connect(base) as connection:
        connection.send(request(body)[:-10])
        status, headers, _ = connection.response()
        assert status == 408
        assert headers[b"connection"] == b"close"
        with suppress(OSError):
            connection.send(request(push_body(entity_id="2")))
        assert until_closed(connection, within=5) == b""
    assert redis_client.llen("rq:queue:hookbird") == 0


# --- caps -------------------------------------------------------------------------------


def head_with(*extra: bytes) -> bytes:
    return request(push_body())[: -len(push_body()) - 2] + b"".join(extra) + b"\r\n"


@pytest.mark.parametrize(
    "extra",
    [
        [b"x-h%d: v\r\n" % i for i in range(101)],
        [b"x-big: " + b"v" * 17_000 + b"\r\n"],
    ],
    ids=["101-headers", "17kb-header"],
)
def test_a_head_over_the_caps_gets_431_and_the_connection_closes(
    make_receiver: MakeReceiver, redis_client: redis.Redis, extra: list[bytes]
) -> None:
    with make_receiver() as base, connect(base) as connection:
        connection.send(head_with(*extra) + push_body())
        answer = until_closed(connection, within=5)
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b"\r\nconnection: close\r\n" in answer
    assert redis_client.llen("rq:queue:hookbird") == 0


def test_a_head_at_the_caps_is_served(make_receiver: MakeReceiver) -> None:
    with make_receiver() as base, connect(base) as connection:
        extra = [b"x-h%d: v\r\n" % i for i in range(100 - 3)]  # host, type, length
        connection.send(head_with(*extra) + push_body())
        assert connection.response()[0] == 200


def test_an_endless_header_value_is_refused_long_before_its_end(
    make_receiver: MakeReceiver,
) -> None:
    """8 MB of one header value, never finished: 431 once the cap is passed, while the
    client is still sending (the receiver reads and drops the rest, so the client's
    writes go through and it reads the answer)."""
    with make_receiver() as base, connect(base) as connection:
        connection.send(b"POST /webhooks/moneybird HTTP/1.1\r\nx-big: ")
        answer = None
        for _ in range(8 * 16):
            try:
                connection.send(b"v" * 65536)
            except OSError:
                break
        answer = until_closed(connection, within=5)
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 431 ")


def push_answered(base: str) -> int | None:
    """The status a push on a new connection gets, or None when it is closed unread."""
    with connect(base) as connection:
        try:
            connection.send(request(push_body()))
            return connection.response()[0]
        except OSError:  # ConnectionError included: closed unread at the cap
            return None


def test_connections_past_the_cap_are_closed_unread_and_logged_once(
    make_receiver: MakeReceiver,
) -> None:
    with captured_logs() as logs, make_receiver(max_connections=3, idle_timeout=30) as base:
        held = [Connection(base) for _ in range(3)]
        try:
            for connection in held:  # each one served: the server counts it as open
                connection.send(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                assert connection.response()[0] == 200
            for _ in range(4):
                with connect(base) as extra:
                    with suppress(OSError):
                        extra.send(request(push_body()))
                    assert until_closed(extra, within=5) == b""
            held.pop().close()
            # served as soon as the server has seen that close (until then: closed unread)
            assert wait_for(lambda: push_answered(base), timeout=10, message="a slot") == 200
        finally:
            for connection in held:
                connection.close()
    warnings = logged(logs, "connections refused: too many open connections")
    assert len(warnings) == 1
    assert warnings[0]["max_connections"] == 3


# --- lingering close --------------------------------------------------------------------


def test_a_client_that_writes_a_whole_oversized_body_before_reading_gets_the_413(
    make_receiver: MakeReceiver,
) -> None:
    """As urllib does: 2 MB written in full, then the answer read. The receiver answers
    413 at the head, closes its side and reads the rest away, so neither the write nor
    the read meets a reset."""
    body = b"x" * (2 * 1024 * 1024)
    # A small send buffer keeps the client writing when the answer comes, as over a
    # real network; on loopback a large one takes the whole body at once.
    with make_receiver() as base, connect(base, send_buffer=16384) as connection:
        connection.send(request(body))  # sendall: raises on a reset or broken pipe
        status, headers, _ = connection.response()
        assert status == 413
        assert headers[b"connection"] == b"close"
        assert until_closed(connection, within=5) == b""


# --- upgrades, redirects, X-Forwarded-For ------------------------------------------------

HIDDEN = b"GET /metrics HTTP/1.1\r\nhost: hookbird.test\r\n\r\n"


def smuggle(base: str, data: bytes) -> bytes | None:
    """Send a request's head, then its body in a later write (llhttp reads what follows
    an upgrade's head as the next request then); what the server sends until it closes."""
    head_end = data.index(b"\r\n\r\n") + 4
    with connect(base) as connection:
        connection.send(data[:head_end])
        time.sleep(0.2)
        with suppress(OSError):
            connection.send(data[head_end:])
        return until_closed(connection, within=3)


@pytest.mark.parametrize(
    "upgrade",
    [
        (b"connection: upgrade", b"upgrade: foo"),
        (b"connection: Upgrade, HTTP2-Settings", b"upgrade: h2c", b"http2-settings: AAMAAABkAAQ"),
    ],
    ids=["foo", "h2c"],
)
def test_an_upgrade_on_the_push_path_gets_400_and_its_body_is_never_a_request(
    make_receiver: MakeReceiver, redis_client: redis.Redis, upgrade: tuple[bytes, ...]
) -> None:
    with make_receiver(idle_timeout=30) as base:
        answer = smuggle(base, request(HIDDEN, *upgrade))
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1 ") == 1
    assert b"\r\nconnection: close\r\n" in answer
    with make_receiver() as base, connect(base) as connection:
        connection.send(request(push_body(), *upgrade))
        assert connection.response()[0] == 400
    assert redis_client.llen("rq:queue:hookbird") == 0


def test_an_upgrade_on_any_other_path_gets_400_too(make_receiver: MakeReceiver) -> None:
    """The receiver serves no protocol upgrade anywhere: a request hidden in the body of
    an ``Upgrade`` request to /healthz is not answered either."""
    head = b"GET /healthz HTTP/1.1\r\nhost: hookbird.test\r\nconnection: upgrade\r\n"
    head += b"upgrade: foo\r\ncontent-length: %d\r\n\r\n" % len(HIDDEN)
    with make_receiver(idle_timeout=30) as base:
        answer = smuggle(base, head + HIDDEN)
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1 ") == 1


def test_a_trailing_slash_is_a_404_not_a_redirect_built_from_host(
    make_receiver: MakeReceiver,
) -> None:
    data = request(push_body()).replace(b"/webhooks/moneybird ", b"/webhooks/moneybird/ ", 1)
    data = data.replace(b"host: hookbird.test", b"host: evil.example", 1)
    with make_receiver() as base, connect(base) as connection:
        connection.send(data)
        status, headers, _ = connection.response()
    assert status == 404
    assert b"location" not in headers


@pytest.mark.parametrize(
    "forwarded", [b'"><script>alert(1)</script>', b"unix:/tmp/x", b"not-an-address"]
)
def test_x_forwarded_for_that_is_no_ip_address_leaves_the_peer_address(
    make_receiver: MakeReceiver, redis_client: redis.Redis, forwarded: bytes
) -> None:
    proxied = make_receiver(uvicorn_config={"forwarded_allow_ips": "127.0.0.1"})
    with proxied as base, connect(base) as connection:
        connection.send(request(push_body(), b"x-forwarded-for: " + forwarded))
        status, _, answer = connection.response()
    assert status == 200
    assert stored(redis_client, answer)["remote_addr"] == "127.0.0.1"


def test_a_refusal_behind_an_answer_in_flight_waits_for_it(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """A push held up by Redis, then a head over the cap pipelined behind it: the push
    is answered, then the connection closes; nothing is written in between."""
    redis_client.client_pause(300, all=False)
    with make_receiver() as base, connect(base) as connection:
        connection.send(request(push_body()) + head_with(b"x-big: " + b"v" * 17_000 + b"\r\n"))
        status, _, answer = connection.response()
        assert status == 200
        assert until_closed(connection, within=5) == b""
    assert stored(redis_client, answer)["body"] == as_stored(push_body())


# --- uvicorn's internals, and the fallback when they change ------------------------------


def test_the_installed_uvicorn_has_what_the_protocol_needs() -> None:
    assert missing_internals() == []
    assert protocol_supported()
    options = uvicorn_options(Settings(idle_timeout=7))
    assert options["http"] is ReceiverProtocol
    assert options["timeout_keep_alive"] == 7
    assert "limit_concurrency" not in options


def without(name: str) -> type:
    """uvicorn's protocol class as a release without ``name`` might have it."""
    namespace = {k: v for k, v in vars(HttpToolsProtocol).items() if k != name}
    return type("HttpToolsProtocol", (asyncio.Protocol,), namespace)


def test_a_missing_method_or_attribute_is_found() -> None:
    assert missing_internals(without("_should_upgrade")) == ["_should_upgrade"]
    assert "on_response_complete" in missing_internals(without("on_response_complete"))

    def init(self: Any, config: Any, server_state: Any, app_state: Any) -> None:
        HttpToolsProtocol.__init__(self, config, server_state, app_state)

    renamed = type("HttpToolsProtocol", (HttpToolsProtocol,), {"__init__": init})
    assert "__init__: self.pipeline" in missing_internals(renamed)

    class Cycle(RequestResponseCycle):
        def __init__(self) -> None:
            self.keep_alive = self.disconnected = self.response_complete = False

    assert missing_internals(cycle=Cycle) == ["RequestResponseCycle.message_event"]


def test_without_the_internals_uvicorns_own_protocol_serves_and_says_so() -> None:
    with captured_logs() as logs:
        options = uvicorn_options(Settings(max_connections=50), base=without("_should_upgrade"))
    assert options["http"] == "httptools"
    assert options["limit_concurrency"] == 50
    (warning,) = [line for line in logs_of(logs) if line["event"].startswith(FALLBACK)]
    assert warning["level"] == "warning"
    assert warning["missing"] == "_should_upgrade"


FALLBACK = "uvicorn's internals are not what hookbird's receiver protocol expects"


def logs_of(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


@pytest.fixture
def fallback_receiver(redis_url: str) -> Iterator[str]:
    """The receiver as it runs when the protocol's internals are missing."""
    settings = Settings(
        redis_url=redis_url, webhook_token=TOKEN, secret_key=SECRET_KEY, idle_timeout=30
    )
    options = uvicorn_options(settings, base=without("on_response_complete"))
    kept = {k: options[k] for k in ("http", "limit_concurrency", "timeout_keep_alive")}
    with serve_in_thread(create_app(settings), **kept) as base:
        yield base


def test_the_fallback_keeps_the_defences_that_need_no_protocol(
    fallback_receiver: str, redis_client: redis.Redis
) -> None:
    """uvicorn's own protocol: no redirect, 413 closes, an Upgrade push is refused and its
    body never answered, an X-Forwarded-For that is no IP address is not stored."""
    base = fallback_receiver
    slash = request(push_body()).replace(b"moneybird ", b"moneybird/ ", 1)
    with connect(base) as connection:
        connection.send(slash)
        status, headers, _ = connection.response()
        assert (status, b"location" in headers) == (404, False)

    with connect(base) as connection:
        connection.send(b"POST /webhooks/moneybird HTTP/1.1\r\ncontent-length: 99999999\r\n\r\n")
        status, headers, _ = connection.response()
        assert (status, headers[b"connection"]) == (413, b"close")
        assert until_closed(connection, within=5) == b""

    answer = smuggle(base, request(HIDDEN, b"connection: upgrade", b"upgrade: foo"))
    assert answer is not None
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1 ") == 1

    with connect(base) as connection:
        connection.send(request(push_body(), b"x-forwarded-for: unix:/tmp/x"))
        status, _, answer = connection.response()
    assert status == 200
    assert stored(redis_client, answer)["remote_addr"] == ""
