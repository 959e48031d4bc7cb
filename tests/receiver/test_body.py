"""BodyReader and declared_length, driven by hand-made ASGI receive callables."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from receiver.body import (
    BodyError,
    BodyReader,
    BodyTimeout,
    BodyTooLarge,
    ClientGone,
    declared_length,
)


def messages(*items: dict[str, Any], delay: float = 0.0) -> Callable[[], Awaitable[Any]]:
    queue = list(items)

    async def receive() -> Any:
        await asyncio.sleep(delay)
        if not queue:
            await asyncio.sleep(3600)
        return queue.pop(0)

    return receive


def read(receive: Callable[[], Awaitable[Any]], limit: int = 10, timeout: float = 5) -> bytes:
    async def run() -> bytes:
        reader = BodyReader(limit=limit, timeout=timeout)
        try:
            return await reader.read(receive)
        finally:
            await reader.close()

    return asyncio.run(run())


def test_single_message_body() -> None:
    """A body in one message is returned as it is."""
    assert read(messages({"type": "http.request", "body": b"12345"})) == b"12345"


def test_chunks_are_joined() -> None:
    """A body in several messages is joined in order."""
    chunks = messages(
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"de"},
    )
    assert read(chunks) == b"abcde"


def test_cap_is_inclusive() -> None:
    """Exactly the limit passes; one byte more raises BodyTooLarge."""
    assert read(messages({"type": "http.request", "body": b"x" * 10})) == b"x" * 10
    with pytest.raises(BodyTooLarge):
        read(messages({"type": "http.request", "body": b"x" * 11}))


def test_chunked_body_stops_past_the_cap() -> None:
    """Reading stops at the first chunk past the cap; later chunks are never asked for."""
    asked = []

    async def receive() -> Any:
        asked.append(1)
        return {"type": "http.request", "body": b"x" * 4, "more_body": True}

    with pytest.raises(BodyTooLarge):
        read(receive)
    assert len(asked) == 3


def test_disconnect_is_reported() -> None:
    """A client that leaves mid-body raises ClientGone."""
    gone = messages(
        {"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.disconnect"}
    )
    with pytest.raises(ClientGone):
        read(gone)


def test_slow_body_times_out() -> None:
    """A body that does not finish within the timeout raises BodyTimeout, promptly."""
    slow = messages({"type": "http.request", "body": b"a", "more_body": True}, delay=0.05)
    with pytest.raises(BodyTimeout):
        read(slow, timeout=0.2)


def test_outside_cancellation_is_not_a_timeout() -> None:
    """Cancelling the request task for another reason still raises CancelledError."""

    async def run() -> None:
        reader = BodyReader(limit=10, timeout=5)
        task = asyncio.ensure_future(reader.read(messages(delay=10)))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await reader.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    ("value", "error"), [("11", BodyTooLarge), ("1e3", BodyError), ("-1", BodyError)]
)
def test_declared_length_is_checked_before_reading(value: str, error: type[Exception]) -> None:
    """Content-Length over the cap or not a number is refused up front."""
    with pytest.raises(error):
        declared_length(value, 10)
    assert declared_length("10", 10) == 10
    assert declared_length(None, 10) is None
