"""Test helpers: real servers on real sockets, started and stopped by the tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from hookbird.redis_server import free_port


def as_bytes(value: object) -> bytes:
    """A value as the tests' Redis clients (no ``decode_responses``) return it: bytes.

    redis-py types its answers ``bytes | str``; anything but bytes fails the test."""
    assert isinstance(value, bytes), f"Redis answered {type(value).__name__}, not bytes"
    return value


def all_bytes(values: Iterable[object]) -> list[bytes]:
    """:func:`as_bytes` over every item of a Redis answer (keys, members, values)."""
    return [as_bytes(value) for value in values]


@contextmanager
def uvicorn_in_thread(
    app: Any, *, host: str = "127.0.0.1", **config: Any
) -> Iterator[tuple[str, uvicorn.Server]]:
    """Run an ASGI app under uvicorn in a thread on a free port; yield its base URL
    and the server (set ``should_exit`` to begin a graceful shutdown)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on", **config
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}", server
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", **config: Any) -> Iterator[str]:
    """Run an ASGI app under uvicorn in a thread on a free port; yield its base URL."""
    with uvicorn_in_thread(app, host=host, **config) as (base, _):
        yield base


def send_raw(base: str, head: bytes, chunks: list[bytes] | None = None, pause: float = 0.0) -> int:
    """Send a request's bytes over a plain socket, chunks ``pause`` s apart; the status code.

    For what an HTTP client will not send: lying lengths, chunked bodies, trickling bodies.
    Returns 0 when the server closed without answering.
    """
    parts = urlsplit(base)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks or []:
            time.sleep(pause)
            try:
                sock.sendall(chunk)
            except OSError:
                break
        data = b""
        while b"\r\n" not in data:
            more = sock.recv(4096)
            if not more:
                break
            data += more
    return int(data.split(b" ", 2)[1]) if data else 0
