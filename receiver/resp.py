"""The Enqueuer's own Redis connections: RESP over asyncio streams, parsed by hiredis.

Every push goes through one ``EVALSHA``; through redis-py's asyncio client such a
call for a batch costs the receiver about twice the CPU of writing the packed
command to a socket and feeding the reply to ``hiredis.Reader``, which is all
this module does. It supports what ``REDIS_URL`` does for the rest of hookbird,
because redis-py parses the URL: ``redis://``, ``rediss://`` (TLS, with redis-py's
``ssl_*`` query options), ``unix://``, username and password, database number
and ``client_name``; and ``redis+sentinel://`` (``hookbird.redis_url``): each new
connection asks the Sentinels for the primary, and a connection whose server
answers ``READONLY`` (it was demoted to a replica by a failover) is closed with
every idle one, so the next call finds the new primary.

A connection serves one command at a time and goes back to the idle list only
after its reply was read whole. Any failure (refused, closed, timed out,
cancelled, garbled) closes it, so a connection never carries half a reply into
the next call; the next call opens a fresh one. An idle connection the server
closed (Redis restarted) is noticed and dropped before it is used.

Errors::

    OSError / ConnectionError   cannot connect, connection lost, garbled reply
    TimeoutError                no reply within ``timeout``
    ReplyError                  Redis answered with an error (``.message``)
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import hiredis
from redis.asyncio.connection import RedisSSLContext, parse_url
from redis.exceptions import RedisError

from hookbird.redis_url import PrimaryLocator, is_sentinel

#: How much one read takes from the socket at most.
READ_SIZE = 65536
#: Error replies that mean the server is no longer the primary: reconnect, via Sentinel.
DEMOTED = ("READONLY", "UNBLOCKED")


class ReplyError(Exception):
    """Redis answered a command with an error, e.g. ``NOSCRIPT`` or ``OOM``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __repr__(self) -> str:
        return f"ReplyError({self.message!r})"


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP, as Redis reads it."""
    packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]  # stub: 1-tuple
    return packed


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = hiredis.Reader(protocolError=ConnectionError, replyError=ReplyError)

    async def reply(self) -> Any:
        """The next whole reply; a :class:`ReplyError` is returned, not raised."""
        parser = self.parser
        reply = parser.gets()
        while reply is False:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise ConnectionError("Redis closed the connection")
            parser.feed(data)
            reply = parser.gets()
        return reply

    def stale(self) -> bool:
        return self.reader.at_eof() or self.reader.exception() is not None

    def close(self) -> None:
        self.writer.close()


class RedisLink:
    """Connections to the Redis at ``url`` for one command at a time each."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.locator: PrimaryLocator | None = None
        options: dict[str, Any]
        if is_sentinel(url):
            self.locator = PrimaryLocator(url, timeout=timeout)
            options = dict(self.locator.parsed.server_options)
            if options.pop("ssl", False):
                options["connection_class"] = "tls"
        else:
            options = dict(parse_url(url))
        self.timeout = timeout
        self.path: str | None = options.get("path")
        self.host: str = options.get("host", "localhost")
        self.port: int = options.get("port", 6379)
        self.ssl: ssl.SSLContext | None = None
        if options.get("connection_class") is not None and self.path is None:
            # rediss:// — the same defaults as redis-py's SSLConnection
            tls: dict[str, Any] = {"cert_reqs": "required", "check_hostname": True}
            tls.update({k[4:]: v for k, v in options.items() if k.startswith("ssl_")})
            self.ssl = RedisSSLContext(**tls).get()
        handshake: list[bytes] = []
        username, password = options.get("username"), options.get("password")
        if username or password:
            credentials = (username, password or "") if username else (password,)
            handshake.append(pack("AUTH", *credentials))
        if options.get("client_name"):
            handshake.append(pack("CLIENT", "SETNAME", options["client_name"]))
        if int(options.get("db") or 0):
            handshake.append(pack("SELECT", int(options["db"])))
        self._handshake = handshake
        self._idle: list[_Connection] = []

    async def call(self, *args: bytes | str | int) -> Any:
        """Send one command and return its reply; raise :class:`ReplyError` for an error."""
        return await self.send(pack(*args))

    async def send(self, command: bytes) -> Any:
        """Like :meth:`call`, for a command already packed with :func:`pack`."""
        connection = self._take()
        try:
            async with asyncio.timeout(self.timeout):
                if connection is None:
                    connection = await self._open()
                connection.writer.write(command)
                reply = await connection.reply()
        except BaseException:
            if connection is not None:
                connection.close()
            self._drop_idle()  # most likely they failed with it (Redis restarted)
            raise
        if isinstance(reply, ReplyError):
            if reply.message.startswith(DEMOTED):
                connection.close()
                self._drop_idle()
            else:
                self._idle.append(connection)
            raise reply
        self._idle.append(connection)
        return reply

    async def send_many(self, commands: bytes, count: int) -> list[Any]:
        """Send ``count`` commands packed together (a pipeline) on one connection; their
        replies in order, an error as a :class:`ReplyError` in its place, not raised."""
        connection = self._take()
        try:
            async with asyncio.timeout(self.timeout):
                if connection is None:
                    connection = await self._open()
                connection.writer.write(commands)
                replies = [await connection.reply() for _ in range(count)]
        except BaseException:
            if connection is not None:
                connection.close()
            self._drop_idle()
            raise
        if any(isinstance(r, ReplyError) and r.message.startswith(DEMOTED) for r in replies):
            connection.close()
            self._drop_idle()
        else:
            self._idle.append(connection)
        return replies

    async def aclose(self) -> None:
        self._drop_idle()
        if self.locator is not None:
            await self.locator.aclose()

    def _take(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.stale():
                return connection
            connection.close()
        return None

    def _drop_idle(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _open(self) -> _Connection:
        if self.path is not None:
            reader, writer = await asyncio.open_unix_connection(self.path, limit=READ_SIZE)
        else:
            host, port = self.host, self.port
            if self.locator is not None:
                try:
                    host, port = await self.locator.primary()
                except RedisError as exc:
                    raise ConnectionError(f"no primary from the Sentinels: {exc}") from exc
            reader, writer = await asyncio.open_connection(
                host, port, ssl=self.ssl, limit=READ_SIZE
            )
        connection = _Connection(reader, writer)
        try:
            if self._handshake:
                writer.write(b"".join(self._handshake))
                for _ in self._handshake:
                    reply = await connection.reply()
                    if isinstance(reply, ReplyError):
                        raise reply
        except BaseException:
            connection.close()
            raise
        return connection
