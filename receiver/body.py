"""Reading a request body with a size cap and a deadline.

A declared ``Content-Length`` over the cap is refused before a byte is read; a
chunked body is read only until it passes the cap. A client that trickles its
body slower than the deadline is cut off.

Deadlines are kept by one sweeper task for all requests rather than a timer per
request: registering a read is a dict insert, and the sweeper cancels the reads
that ran over (checking a few times per deadline), the way ``asyncio.timeout``
does it, but without arming a timer on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.types import Receive


class BodyError(Exception):
    status_code = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BodyTooLarge(BodyError):
    status_code = 413


class BodyTimeout(BodyError):
    status_code = 408


class ClientGone(BodyError):
    status_code = 400


def declared_length(value: str | None, limit: int) -> int | None:
    """Check a ``Content-Length`` header against the cap before reading anything."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()):
        raise BodyError("invalid Content-Length")
    length = int(value)
    if length > limit:
        raise BodyTooLarge(f"body of {length} bytes is over the {limit} byte limit")
    return length


async def _read(receive: Receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        chunk: bytes = message.get("body", b"")
        if len(chunk) > limit:
            raise BodyTooLarge(f"body is over the {limit} byte limit")
        return chunk  # the common case: the whole body in one message
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise ClientGone("client disconnected before sending the body")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body is over the {limit} byte limit")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


class BodyReader:
    """Reads bodies under a cap and a deadline; one per app, used from its event loop."""

    def __init__(self, *, limit: int, timeout: float) -> None:
        self.limit = limit
        self.timeout = timeout
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._sweeper: asyncio.Task[None] | None = None

    async def read(self, receive: Receive) -> bytes:
        """The whole body, or :class:`BodyTooLarge`, :class:`BodyTimeout`, :class:`ClientGone`."""
        task = asyncio.current_task()
        assert task is not None
        self._deadlines[task] = time.monotonic() + self.timeout
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        try:
            return await _read(receive, self.limit)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            task.uncancel()
            raise BodyTimeout(f"body not received within {self.timeout:g} s") from None
        finally:
            self._deadlines.pop(task, None)
            self._expired.discard(task)

    async def _sweep(self) -> None:
        interval = min(self.timeout / 4, 1.0)
        while self._deadlines:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for task, deadline in list(self._deadlines.items()):
                if deadline <= now and task not in self._expired:
                    self._expired.add(task)
                    task.cancel()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
