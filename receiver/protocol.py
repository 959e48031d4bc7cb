"""uvicorn's httptools protocol, with pushes answered straight from its parser.

``uvicorn.run(**receiver.server.uvicorn_options(settings))`` runs it. It builds on
``receiver.edge.EdgeProtocol`` (timeouts, caps, lingering close: the HTTP edge's
defences, which hold on both paths below) with two changes to uvicorn's protocol:

**A push that arrives whole skips the ASGI request cycle.** A ``POST
/webhooks/moneybird`` with a ``Content-Length`` within the body cap whose head
and body came in the same read (how a push of a few KB arrives, from Moneybird or
from a proxy that buffers requests) goes from the parser to
``PushEndpoint.answer`` and its reply is written as one response. The cycle it
skips (scope, request cycle, message dicts, the proxy-headers middleware, the
ASGI send checks) costs the receiver about as much CPU per push as hookbird's
own work on it. Everything else takes uvicorn's usual path to Starlette: other
routes, and a push whose body comes in several reads, is chunked, expects
``100 Continue``, is over the cap or follows a request still being answered on
its connection. While a push is answered here, a stand-in for uvicorn's request
cycle keeps uvicorn's rules in force: pipelined requests wait their turn,
keep-alive and ``Connection: close`` are honoured, a shutdown lets the answer go
out first, ``X-Forwarded-For`` from a trusted proxy gives the remote address
(through uvicorn's own ``ProxyHeadersMiddleware``, when it names an IP address).
uvicorn's access log, which
hookbird turns off, does not see these pushes; hookbird's own log lines do.

**One write per response** on the ASGI path: uvicorn writes a response's status
line and headers as soon as the app sends ``http.response.start`` and the body
when it sends ``http.response.body``: two system calls and two TCP segments.
Here the head waits until the body is written, or until the end of the
event-loop turn when no body follows in it (a streamed response, ``100
Continue``), so it is never held back from a client that is waiting for it.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Coroutine
from typing import Any

from uvicorn.config import Config
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from hookbird.logs import get_logger
from receiver.app import PUSH_PATH
from receiver.edge import EdgeProtocol, EdgeTransport
from receiver.endpoint import WANTED, PushEndpoint, Reply, error_body

log = get_logger("hookbird.receiver")

_HEAD = b"HTTP/1.1 "
_END_OF_HEAD = b"\r\n\r\n"
_PUSH_URL = PUSH_PATH.encode()


class _CoalescingTransport(EdgeTransport):
    """A transport that holds a response head back until the next write.

    Only a write that is a head alone is held: one that carries its body already
    (uvicorn's own 400s, the pushes answered by the protocol) goes straight out.
    """

    __slots__ = ("_call_soon", "_head")

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__(transport)
        self._head: bytes | None = None
        self._call_soon = asyncio.get_running_loop().call_soon

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.lingering:
            return
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:9] == _HEAD and data[-4:] == _END_OF_HEAD:
            self._head = bytes(data)
            self._call_soon(self.flush)
        else:
            self._transport.write(data)

    def flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close_now(self) -> None:
        self.flush()
        self._transport.close()


class _PushCycle:
    """Stands in for uvicorn's request cycle while the protocol answers a push.

    uvicorn looks at its connection's current cycle to queue pipelined requests
    (``response_complete``), to stop keep-alive on shutdown (``keep_alive``) and
    to tell it the client went away (``disconnected``, ``message_event``).
    """

    __slots__ = ("disconnected", "keep_alive", "response_complete")

    #: uvicorn sets it when the connection is lost; nothing here waits on it.
    message_event = asyncio.Event()

    def __init__(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive
        self.response_complete = False
        self.disconnected = False


_SHORTCUTS: weakref.WeakKeyDictionary[Config, PushEndpoint | None] = weakref.WeakKeyDictionary()


def _shortcut(config: Config, app: Any) -> PushEndpoint | None:
    """The push endpoint behind uvicorn's app, or None: then every request goes the
    ASGI way. Only uvicorn's proxy-headers middleware may wrap the receiver app: the
    shortcut would bypass any other middleware."""
    if config in _SHORTCUTS:
        return _SHORTCUTS[config]
    if isinstance(app, ProxyHeadersMiddleware):
        app = app.app
    endpoint = getattr(app, "push_endpoint", None)
    found = endpoint if isinstance(endpoint, PushEndpoint) else None
    _SHORTCUTS[config] = found
    return found


class ReceiverProtocol(EdgeProtocol):
    """``uvicorn.run(http=ReceiverProtocol)``: see the module docstring."""

    transport_class = _CoalescingTransport

    #: False sends pushes the ASGI way too (the tests run both ways).
    answers_pushes = True

    _shortcut: PushEndpoint | None = None
    _push_body: list[bytes] | None = None
    _forwarded = False  # the push being read has an X-Forwarded-For
    _wanted: dict[bytes, str] = {}  # noqa: RUF012  (replaced per push, never changed)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.answers_pushes:
            self._shortcut = _shortcut(self.config, self.app)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._push_body is not None and not self.transport.is_closing():
            # A push's body did not all come in this read: hand it to the ASGI path,
            # which waits for the rest under the body deadline.
            body = b"".join(self._push_body)
            self._push_body = None
            super()._headers_admitted()
            if body:
                super().on_body(body)

    def _headers_admitted(self) -> None:
        shortcut = self._shortcut
        if shortcut is not None and self._is_plain_push(shortcut.settings.max_body_bytes):
            self._push_body = []
        else:
            super()._headers_admitted()

    def on_body(self, body: bytes) -> None:
        if self._push_body is not None:
            self._push_body.append(body)
        else:
            super().on_body(body)

    def _message_complete(self) -> None:
        if self._push_body is None or self._shortcut is None:
            return super()._message_complete()
        started = time.perf_counter()
        received_ns = time.time_ns()
        body = b"".join(self._push_body)
        self._push_body = None
        version = self.parser.get_http_version()
        cycle = _PushCycle(keep_alive=version != "1.0" and self.parser.should_keep_alive())
        self.cycle = cycle  # type: ignore[assignment]
        endpoint = self._shortcut
        remote_addr = self._remote_addr()
        answer = endpoint.answer(body, self._wanted, remote_addr, received_ns, started)
        task = self.loop.create_task(self._reply(cycle, answer))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def _is_plain_push(self, max_body_bytes: int) -> bool:
        if self.url != _PUSH_URL or self.parser.get_method() != b"POST":
            return False
        if self.expect_100_continue or self.parser.should_upgrade():
            return False
        if self.limit_concurrency is not None:  # uvicorn's 503s when over it
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False  # pipelined behind a request still being answered: uvicorn queues it
        length = None
        self._forwarded = False
        # the endpoint's wanted_headers, picked in the same pass
        self._wanted = wanted = {}
        for name, value in self.headers:
            if name in WANTED:
                wanted[name] = value.decode("latin-1")
                if name == b"content-length":
                    length = value
            elif name == b"transfer-encoding":
                return False
            elif name == b"x-forwarded-for":
                self._forwarded = True
        return length is not None and length.isdigit() and int(length) <= max_body_bytes

    def _remote_addr(self) -> str:
        client = self.client
        if self._forwarded:
            client = self.forwarded_client() or client
        return client[0] if client else ""

    async def _reply(self, cycle: _PushCycle, answer: Coroutine[Any, Any, Reply]) -> None:
        try:
            reply = await answer
        except Exception:
            log.exception("push failed: unexpected error")
            reply = Reply(500, error_body("internal error"))
        if not cycle.disconnected and not self.transport.is_closing():
            self.transport.write(self._render(reply, cycle.keep_alive))
        cycle.response_complete = True
        if not cycle.keep_alive:
            self.transport.close()
        self.on_response_complete()  # uvicorn's: the next pipelined request, or keep-alive

    def _render(self, reply: Reply, keep_alive: bool) -> bytes:
        """The response as uvicorn writes one: status line, its default headers
        (``date``), the reply's, ``connection: close`` when the connection ends."""
        content = [STATUS_LINE[reply.status], _default_fields(self.server_state.default_headers)]
        for name, value in reply.head_fields():
            content += (name, b": ", value, b"\r\n")
        if not keep_alive:
            content.append(b"connection: close\r\n")
        content += (b"\r\n", reply.body)
        return b"".join(content)


_defaults: tuple[object, bytes] = (None, b"")


def _default_fields(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default header fields as bytes; uvicorn makes a new list each second
    (for ``date``), so the bytes are made once for each list."""
    global _defaults
    if _defaults[0] is not headers:
        _defaults = (headers, b"".join(b"%s: %s\r\n" % field for field in headers))
    return _defaults[1]
