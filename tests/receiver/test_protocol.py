"""The receiver's HTTP protocol: a response's head and body leave in one write."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from receiver.protocol import _CoalescingTransport

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
    host, port = receiver.removeprefix("http://").split(":")
    body = b'{"action":"test_webhook","administration_id":1,"token":"x"}'
    request = (
        b"POST /webhooks/moneybird HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + 5
        while not reached and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(reached) == 1
    assert reached[0].startswith(b"HTTP/1.1 200 ")
    assert reached[0].endswith(b'\r\n\r\n{"status":"test"}')
