"""Reading a request body with a size cap and a deadline.

A declared ``Content-Length`` over the cap is refused before a byte is read; a
chunked body is read only until it passes the cap. A client that trickles its
body slower than the deadline is cut off.
"""

from __future__ import annotations

import asyncio

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


async def read_body(receive: Receive, *, limit: int, timeout: float) -> bytes:
    """Read the ASGI request body, raising :class:`BodyError` subclasses."""
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone("client disconnected before sending the body")
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise BodyTooLarge(f"body is over the {limit} byte limit")
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise BodyTimeout(f"body not received within {timeout:g} s") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
