"""The receiver's HTTP edge: uvicorn's httptools protocol, made safe to face the internet.

uvicorn's defaults trust the client: a connection that sends nothing, or a header
byte now and then, stays open for good; a head may be megabytes and hold any number
of headers; and a 408 or 413 leaves the connection open with the rest of the body
still coming, so a client that writes its whole body before it reads gets a reset
instead of the answer. A webhook receiver is reachable by anyone who can reach
Moneybird's target URL, often with no proxy in front, so :class:`EdgeProtocol`
adds, per connection:

- **a cap on open connections** (``HOOKBIRD_MAX_CONNECTIONS``): past it a new
  connection is closed before a byte of it is read, and a warning says so at most
  every 10 s. A 503 would need the request read first, which is what a flood of
  connections must not cost.
- **an idle timeout** (``HOOKBIRD_IDLE_TIMEOUT``) while no request is in progress,
  before the first and between keep-alive requests, and **a header timeout**
  (``HOOKBIRD_HEADER_TIMEOUT``) from a request's first byte to the end of its head:
  408. Neither is pushed back by bytes that arrive, so trickling cannot hold a
  connection open.
- **a cap on the head** (``HOOKBIRD_MAX_HEADER_BYTES``, ``HOOKBIRD_MAX_HEADERS``):
  431, checked while the head arrives, so it is never buffered much past the cap.
- **400 for a protocol upgrade** it does not serve (anything but uvicorn's own
  WebSocket handling): llhttp would otherwise parse the request's body as the next
  request on the connection.
- **lingering close**: a connection closed while its request is still arriving
  (408, 413, 431, 400) stops writing after the answer, then reads and discards what
  the client still sends, for at most :data:`LINGER_SECONDS` (or
  :data:`LINGER_QUIET` without a byte) and :data:`LINGER_BYTES`, and only then
  closes. Closing at once would make the kernel reset the connection over the
  unread bytes, and the client would see the reset, not the answer.
- **X-Forwarded-For only when it names an IP address**: a trusted proxy's header
  that gives anything else (``unix:/tmp/x``, markup) is dropped before uvicorn's
  proxy-headers middleware reads it, so the peer's address is kept.

Deadlines are kept by one sweeper task per server for all connections (a float per
connection, checked a few times per timeout), not a timer per request: arming a
timer costs more than the rest of the protocol's work on a push.

Every refusal is answered as uvicorn answers its own 400s: the status line, uvicorn's
default headers, a small JSON body like the endpoint's, ``connection: close``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass
from typing import Any

from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hookbird.logs import get_logger
from hookbird.settings import Settings
from receiver.endpoint import error_body, is_ip_address

log = get_logger("hookbird.receiver")

#: Lingering close: how long a closed connection's incoming bytes are read and
#: discarded at most, how long without a byte ends it, and how many bytes at most.
LINGER_SECONDS = 10.0
LINGER_QUIET = 2.0
LINGER_BYTES = 16 * 1024 * 1024
#: At most one "too many connections" warning per this many seconds.
TURNED_AWAY_LOG_INTERVAL = 10.0

# A connection's phase decides what its deadline means when it passes.
IDLE = 0  # no request in progress: close
HEAD = 1  # a request's head is arriving: 408
BUSY = 2  # a request is being read or answered: no deadline here
LINGER = 3  # answered and closing: close for good

_NEVER = float("inf")


@dataclass(frozen=True)
class EdgeLimits:
    """The edge's settings, one per server."""

    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int = 800

    @classmethod
    def from_settings(cls, settings: Settings) -> EdgeLimits:
        return cls(
            header_timeout=settings.header_timeout,
            idle_timeout=settings.idle_timeout,
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            max_connections=settings.max_connections,
        )


class Edge:
    """What the connections of one uvicorn server share: limits, sweeper, log budget."""

    def __init__(self, limits: EdgeLimits, proxy: ProxyHeadersMiddleware | None) -> None:
        self.limits = limits
        #: uvicorn's middleware, run on a minimal scope to find a proxied client's
        #: address; None when uvicorn runs without proxy headers.
        self.proxy = proxy
        self.interval = min(limits.header_timeout, limits.idle_timeout, LINGER_QUIET) / 4
        self._sweeper: asyncio.Task[None] | None = None
        self._turned_away = 0
        self._next_warning = 0.0

    def watch(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        """Make sure the sweeper runs while the server has connections."""
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = loop.create_task(self._sweep(loop, connections))

    async def _sweep(self, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        while connections:
            await asyncio.sleep(self.interval)
            now = loop.time()
            for connection in list(connections):
                if getattr(connection, "deadline", _NEVER) <= now:
                    connection.expire(now)

    def turn_away(self) -> None:
        """Count a connection closed over the cap; warn at most every 10 s."""
        self._turned_away += 1
        now = time.monotonic()
        if now >= self._next_warning:
            log.warning(
                "connections refused: too many open connections",
                max_connections=self.limits.max_connections,
                refused=self._turned_away,
                setting="HOOKBIRD_MAX_CONNECTIONS",
            )
            self._turned_away = 0
            self._next_warning = now + TURNED_AWAY_LOG_INTERVAL


_EDGES: weakref.WeakKeyDictionary[Config, Edge] = weakref.WeakKeyDictionary()


def edge_for(config: Config, app: Any) -> Edge:
    """The edge of uvicorn's server: its limits come from the receiver app's settings
    (defaults for another app); one per uvicorn config."""
    edge = _EDGES.get(config)
    if edge is None:
        proxied = isinstance(app, ProxyHeadersMiddleware)
        inner = app.app if proxied else app
        endpoint = getattr(inner, "push_endpoint", None)
        settings = getattr(endpoint, "settings", None)
        limits = EdgeLimits.from_settings(settings) if settings is not None else EdgeLimits()
        proxy = ProxyHeadersMiddleware(_nothing, config.forwarded_allow_ips) if proxied else None
        edge = _EDGES[config] = Edge(limits, proxy)
    return edge


async def _nothing(scope: Any, receive: Any, send: Any) -> None:
    return None


def run_now(coroutine: Any) -> None:
    """Run a coroutine that never suspends to its end."""
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise RuntimeError("a coroutine expected to finish at once suspended")


class EdgeTransport:
    """The socket transport, as the protocol and uvicorn's request cycles see it.

    ``close()`` asks the protocol (``closer``), which closes at once or lingers; while
    lingering the connection reads as closing and writes are dropped.
    """

    __slots__ = ("_transport", "closer", "lingering")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self.closer: Any = None
        self.lingering = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.lingering:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.closer is not None:
            self.closer()
        else:
            self.close_now()

    def close_now(self) -> None:
        self._transport.close()

    def linger(self) -> None:
        """Stop writing once what is written has gone out; keep reading."""
        self.flush()
        self.lingering = True
        transport = self._transport
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()

    def flush(self) -> None:
        """Write out anything held back (see ``receiver.protocol``)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """A head's size as counted against the cap: URL, names, values, separators."""
    return len(url) + sum(len(name) + len(value) + 4 for name, value in headers)


class EdgeProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the defences of the module docstring."""

    #: The transport wrapper this protocol writes through.
    transport_class: type[EdgeTransport] = EdgeTransport

    deadline = _NEVER  # when the current phase runs out (the loop's clock)
    _phase = IDLE
    _turned_away = False  # closed over the connection cap, never served
    _lost = False
    _stopping = False  # the server is shutting down: no lingering
    _in_message = False  # a request has begun and not all of it has arrived
    _refusal: tuple[int, str] | None = None
    _fed = 0  # bytes received on the connection
    _chunk_start = 0  # _fed before the read being parsed
    _head_start = 0  # _chunk_start of the read the current head began in
    _head_after = 0  # _fed after that read
    _linger_until = 0.0
    _linger_left = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        edge = self._edge = edge_for(self.config, self.app)
        limits = self._limits = edge.limits
        if len(self.connections) >= limits.max_connections:
            self._turned_away = True
            self.transport = transport
            transport.close()
            edge.turn_away()
            return
        wrapped = self.transport_class(transport)
        wrapped.closer = self._close
        super().connection_made(wrapped)  # type: ignore[arg-type]
        self.timeout_keep_alive = limits.idle_timeout  # type: ignore[assignment]
        self._phase, self.deadline = IDLE, self.loop.time() + limits.idle_timeout
        edge.watch(self.loop, self.connections)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._turned_away:
            return
        self._lost = True
        self.deadline = _NEVER
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == LINGER:
            self._discard(len(data))
            return
        if self._refusal is not None:
            return  # refused, closing once an earlier answer is out: never parsed
        self._chunk_start = self._fed
        self._fed += len(data)
        super().data_received(data)
        if self._refusal is None and self._phase == HEAD:
            # Still in the head: the reads after the one it began in are all head.
            limits = self._limits
            if (
                self._fed - self._head_after > limits.max_header_bytes
                or len(self.headers) > limits.max_headers
            ):
                self._refusal = (431, "request head over the limit")
        if self._refusal is not None:
            self._refuse()

    # --- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        if self._refusal is None:
            self._phase = HEAD
            self.deadline = self.loop.time() + self._limits.header_timeout
            self._head_start, self._head_after = self._chunk_start, self._fed

    def on_headers_complete(self) -> None:
        if self._admit_head():
            self._headers_admitted()

    def on_body(self, body: bytes) -> None:
        if self._refusal is None:
            super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._refusal is None:
            self._message_complete()

    def _message_complete(self) -> None:
        super().on_message_complete()

    def _admit_head(self) -> bool:
        """The edge's checks on a complete head; False when it is refused."""
        if self._refusal is not None:
            return False
        self._phase, self.deadline = BUSY, _NEVER
        limits = self._limits
        if len(self.headers) > limits.max_headers or (
            self._fed - self._head_start > limits.max_header_bytes
            and _head_size(self.url, self.headers) > limits.max_header_bytes
        ):
            self._refusal = (431, "request head over the limit")
            return False
        if self.parser.should_upgrade() and not self._should_upgrade():
            self._refusal = (400, "protocol upgrade not supported: send plain HTTP/1.1")
            return False
        return True

    def _headers_admitted(self) -> None:
        """A head that passed the edge's checks, to uvicorn's ASGI request cycle."""
        if self._edge.proxy is not None:
            for name, _ in self.headers:
                if name == b"x-forwarded-for":
                    if self.forwarded_client() is None:
                        self.headers[:] = [h for h in self.headers if h[0] != b"x-forwarded-for"]
                    break
        super().on_headers_complete()

    def forwarded_client(self) -> tuple[str, int] | None:
        """The client uvicorn's proxy-headers middleware would name; None when a
        trusted proxy's ``X-Forwarded-For`` names something that is no IP address."""
        client = self.client
        proxy = self._edge.proxy
        if proxy is None:
            return client
        scope: dict[str, Any] = {"type": "http", "client": client, "headers": self.headers}
        run_now(proxy(scope, None, None))  # type: ignore[arg-type]
        named: tuple[str, int] | None = scope["client"]
        if named is client or (named is not None and is_ip_address(named[0])):
            return named
        log.debug("X-Forwarded-For ignored: not an IP address", peer=client[0] if client else "")
        return None

    # --- the connection's life -----------------------------------------------------------

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if (
            self._phase == BUSY
            and not self._lost
            and (self.cycle is None or self.cycle.response_complete)
            and not self.pipeline
        ):
            self._phase, self.deadline = IDLE, self.loop.time() + self._limits.idle_timeout

    def shutdown(self) -> None:
        self._stopping = True
        if self._phase == LINGER:
            self.transport.close_now()  # type: ignore[attr-defined]
        else:
            super().shutdown()

    def expire(self, now: float) -> None:
        """The sweeper found this connection's deadline passed."""
        phase = self._phase
        self.deadline = _NEVER
        if phase == IDLE:
            if self.cycle is None or self.cycle.response_complete:
                self.transport.close()
            else:
                self._phase = BUSY
        elif phase == HEAD:
            timeout = self._limits.header_timeout
            self._refusal = (408, f"request head not received within {timeout:g} s")
            self._refuse()
        elif phase == LINGER:
            self.transport.close_now()  # type: ignore[attr-defined]

    def _refuse(self) -> None:
        """Answer the refused request and close, or, when an earlier request on the
        connection is still being answered, close once that answer is out."""
        assert self._refusal is not None
        if self.transport.is_closing():
            return  # uvicorn answered it already (a 400 for a head it could not parse)
        status, reason = self._refusal
        log.warning("request refused", status=status, reason=reason)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self.pipeline.clear()
            cycle.keep_alive = False
            self._phase, self.deadline = BUSY, _NEVER
            return
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        body = error_body(reason)
        content += (
            b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        )
        self.transport.write(b"".join(content))
        self.transport.close()

    def _close(self) -> None:
        """``transport.close()``, from uvicorn or hookbird: linger while the client may
        still be sending the request, else close at once."""
        if self._phase == LINGER:
            return
        transport: EdgeTransport = self.transport  # type: ignore[assignment]
        if self._lost or self._stopping or not (self._in_message or self._refusal):
            transport.close_now()
            return
        now = self.loop.time()
        self._phase = LINGER
        self._linger_until = now + LINGER_SECONDS
        self._linger_left = LINGER_BYTES
        self.deadline = min(now + LINGER_QUIET, self._linger_until)
        transport.linger()

    def _discard(self, size: int) -> None:
        self._linger_left -= size
        if self._linger_left <= 0:
            self.transport.close_now()  # type: ignore[attr-defined]
        else:
            self.deadline = min(self.loop.time() + LINGER_QUIET, self._linger_until)
