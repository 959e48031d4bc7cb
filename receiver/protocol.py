"""uvicorn's httptools protocol, sending each response's head and body in one write.

uvicorn writes a response's status line and headers as soon as the app sends
``http.response.start`` and the body when it sends ``http.response.body``: two
system calls and two TCP segments for every push answered. Here the head waits
until the body is written, or until the end of the event-loop turn when no body
follows in it (a streamed response, ``100 Continue``), so it is never held back
from a client that is waiting for it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_HEAD = b"HTTP/1.1 "
_END_OF_HEAD = b"\r\n\r\n"


class _CoalescingTransport:
    """A transport that holds a response head back until the next write.

    Only a write that is a head alone is held: one that carries its body already
    (uvicorn's own 400s) goes straight out.
    """

    __slots__ = ("_call_soon", "_head", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._call_soon = asyncio.get_running_loop().call_soon

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + data)
        elif data[:9] == _HEAD and data[-4:] == _END_OF_HEAD:
            self._head = bytes(data)
            self._call_soon(self._flush)
        else:
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def _flush(self) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.run(http=CoalescingHttpToolsProtocol)``: one write per response."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescingTransport(transport))  # type: ignore[arg-type]
