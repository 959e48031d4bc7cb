"""Redis clients from ``REDIS_URL``, including Redis Sentinel: one place that knows the forms.

Every hookbird process (receiver, workers, scheduler, CLI, dev's dashboard, doctor)
builds its Redis clients here, so a ``REDIS_URL`` that names Sentinels works for all
of them and a failover is followed without restarting anything: a Sentinel client's
connections ask the Sentinels for the primary each time they (re)connect, the
reconnects of a retried command included (:class:`PrimaryFollowingConnection`), and
drop a connection that finds its server demoted to a replica (redis-py's
``SentinelConnectionPool``).

Forms::

    redis://[user:password@]host[:port][/db][?option=value…]     (redis-py's own)
    rediss://…                                                    TLS
    unix:///path/to/redis.sock[?db=N]
    redis+sentinel://[user:password@]host[:port][,host[:port]…]/service_name[/db][?…]
    rediss+sentinel://…                                           TLS to Sentinels and Redis

In the Sentinel form (the one rq-dashboard accepts) ``user:password`` is for the Redis
servers; Sentinels that want a password of their own get it from the query options
``sentinel_password`` (and ``sentinel_username``). A Sentinel's port defaults to
26379. The other query options are redis-py's (``ssl_ca_certs``, ``client_name``,
``socket_keepalive`` …) and apply to the Redis servers and, for ``ssl_*``, to the
Sentinels too.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.connection
import redis.sentinel

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: A Sentinel's port when the URL names none.
SENTINEL_PORT = 26379
#: What a ``REDIS_URL`` looks like, for error messages.
FORMS = (
    "redis://host:port/db, e.g. redis://localhost:6379/0 (rediss:// for TLS, "
    "unix:///path/redis.sock for a socket, "
    "redis+sentinel://host:26379,host2:26379/service_name/0 for Redis Sentinel)"
)


class RedisURLError(ValueError):
    """A ``REDIS_URL`` hookbird cannot use; the message names the problem."""


@dataclass(frozen=True)
class SentinelURL:
    """A ``redis+sentinel://`` URL taken apart."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    #: redis-py connection options for the Redis servers (db, password, ssl_*, …)
    server_options: dict[str, Any] = field(default_factory=dict)
    #: redis-py connection options for the Sentinels (password, ssl_*)
    sentinel_options: dict[str, Any] = field(default_factory=dict)
    tls: bool = False

    @property
    def db(self) -> int:
        return int(self.server_options.get("db") or 0)


def is_sentinel(url: str) -> bool:
    """Whether ``url`` is in a Sentinel form."""
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def _host_port(text: str, url: str) -> tuple[str, int]:
    if text.startswith("["):  # [::1]:26379
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise RedisURLError(f"REDIS_URL {url!r} names a Sentinel without a host: {text!r}")
    if not port_text:
        return host, SENTINEL_PORT
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise RedisURLError(f"REDIS_URL {url!r} gives Sentinel {host} the port {port_text!r}")
    return host, port


def parse_sentinel_url(url: str, shown: str | None = None) -> SentinelURL:
    """Take a Sentinel URL apart, or raise :class:`RedisURLError` naming the problem.

    ``shown`` is the URL as error messages may print it (without its password).
    """
    shown = shown if shown is not None else url
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in SENTINEL_SCHEMES:
        raise RedisURLError(f"REDIS_URL {shown!r} is not a redis+sentinel:// URL")
    tls = scheme.lower() == "rediss+sentinel"
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not hosts:
        raise RedisURLError(
            f"REDIS_URL {shown!r} names no Sentinel: list them as host:port[,host:port…]"
        )
    sentinels = tuple(_host_port(item.strip(), shown) for item in hosts.split(","))
    path = [unquote(piece) for piece in parts.path.split("/") if piece]
    if not path:
        raise RedisURLError(
            f"REDIS_URL {shown!r} names no service: add the name the Sentinels monitor the "
            "primary under (`sentinel monitor <name> …`), e.g. …:26379/mymaster/0"
        )
    if len(path) > 2:
        raise RedisURLError(
            f"REDIS_URL {shown!r} has more than /service_name/db after the Sentinels"
        )
    service = path[0]
    sentinel_query: dict[str, str] = {}
    server_query: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in ("sentinel_password", "sentinel_username"):
            sentinel_query[name.removeprefix("sentinel_")] = value
        else:
            server_query.append((name, value))
    if len(path) == 2:
        if not path[1].isdigit():
            raise RedisURLError(
                f"REDIS_URL {shown!r}: the database after the service name must be a number, "
                f"got {path[1]!r}"
            )
        server_query.append(("db", path[1]))
    # redis-py reads the password, the database and the query options: the same rules
    # as for redis:// (percent-decoding, option types) on a stand-in host.
    stand_in = f"{'rediss' if tls else 'redis'}://{userinfo}{at}sentinel-primary/"
    if server_query:
        stand_in += "?" + urlencode(server_query)
    try:
        options: dict[str, Any] = dict(redis.connection.parse_url(stand_in))  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise RedisURLError(f"REDIS_URL {shown!r}: {exc}") from None
    for key in ("host", "port", "connection_class", "path"):
        options.pop(key, None)
    sentinel_options: dict[str, Any] = {k: v for k, v in sentinel_query.items() if v}
    if tls:
        options["ssl"] = True
        sentinel_options["ssl"] = True
        sentinel_options.update({k: v for k, v in options.items() if k.startswith("ssl_")})
    return SentinelURL(sentinels, service, options, sentinel_options, tls)


def url_problem(url: str, shown: str | None = None) -> str | None:
    """Why hookbird cannot use this ``REDIS_URL`` (e.g. ``localhost:6379``), or None."""
    shown = shown if shown is not None else url
    try:
        if is_sentinel(url):
            parse_sentinel_url(url, shown)
        else:
            redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except RedisURLError as exc:
        return str(exc)
    except ValueError as exc:
        return f"REDIS_URL {shown!r} is not a Redis URL ({exc}); it takes the form {FORMS}"
    return None


def _sentinel_kwargs(parsed: SentinelURL, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Connection options for the Sentinels: the URL's, with the caller's socket timeouts."""
    chosen = {k: v for k, v in kwargs.items() if k.startswith("socket_") and v is not None}
    return {**chosen, **parsed.sentinel_options}


class PrimaryFollowingConnection(redis.sentinel.SentinelManagedConnection):
    """A Sentinel-managed connection that asks the Sentinels again on *every* reconnect.

    redis-py's ``SentinelManagedConnection`` asks them only in :meth:`connect`, which the
    pool calls when it hands a connection out. A command that fails on a connection in
    hand (the primary killed, or demoted: ``READONLY`` becomes a ``ConnectionError``) is
    retried by the client's retry hook on that same connection, and its reconnect goes
    through ``connect_check_health`` with the address it had: the demoted or dead primary.
    With redis-py's default retry (three tries) the error then reaches the caller and the
    next command looks the primary up; with :class:`hookbird.outage.OutageRetry`, which
    retries for as long as the outage grace, every retry went back to the old address and
    a worker stayed on the demoted primary. Here a reconnect always asks the Sentinels.
    """

    def connect_to(self, address: tuple[str, int]) -> None:
        self.host, self.port = address
        # the plain connect, at the address just looked up
        super().connect_check_health(
            check_health=self.connection_pool.check_connection, retry_socket_connect=False
        )

    def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        if self._sock:
            return
        self.connect()  # type: ignore[no-untyped-call]  # the Sentinels name the primary first


class PrimaryFollowingSSLConnection(PrimaryFollowingConnection, redis.connection.SSLConnection):
    """:class:`PrimaryFollowingConnection` over TLS."""


def _follows_on_retry() -> bool:
    """Whether this redis-py has the connection internals :class:`PrimaryFollowingConnection`
    overrides, as 7.0 to 8.2 have them: ``connect_check_health(check_health,
    retry_socket_connect)``, through which a retried command reconnects. Elsewhere
    Sentinel clients keep redis-py's own connection class, and
    :func:`hookbird.outage.ride_out` leaves them without the outage retry (they follow
    a failover, but stop on an outage longer than redis-py's own few retries).
    """
    method = getattr(redis.connection.AbstractConnection, "connect_check_health", None)
    if method is None:
        return False
    return {"check_health", "retry_socket_connect"} <= set(inspect.signature(method).parameters)


#: See :func:`_follows_on_retry`; checked once, at import.
FOLLOWS_ON_RETRY = _follows_on_retry()


class SentinelRedis(redis.Redis):
    """A client on a Sentinel-monitored primary; :meth:`close` closes its Sentinel clients too."""

    sentinels: redis.sentinel.Sentinel | None = None

    def close(self) -> None:
        super().close()
        sentinel, self.sentinels = self.sentinels, None
        if sentinel is not None:
            sentinel.close()


class AsyncSentinelRedis(redis.asyncio.Redis):
    """The asyncio twin of :class:`SentinelRedis`."""

    sentinels: redis.asyncio.sentinel.Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        sentinel, self.sentinels = self.sentinels, None
        if sentinel is not None:
            await sentinel.aclose()


def sentinel_manager(url: str, **kwargs: Any) -> redis.sentinel.Sentinel:
    """A :class:`redis.sentinel.Sentinel` for a Sentinel URL (doctor asks it about topology)."""
    parsed = parse_sentinel_url(url)
    return redis.sentinel.Sentinel(
        parsed.sentinels,
        sentinel_kwargs=_sentinel_kwargs(parsed, kwargs),
        **{**parsed.server_options, **kwargs},
    )


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    """A synchronous client for ``url`` (any form); ``kwargs`` as for ``Redis.from_url``.

    Nothing is sent yet. A Sentinel URL gives a client on the current primary that
    follows a failover.
    """
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    sentinel = redis.sentinel.Sentinel(
        parsed.sentinels, sentinel_kwargs=_sentinel_kwargs(parsed, kwargs)
    )
    options: dict[str, Any] = {**parsed.server_options, **kwargs}
    if FOLLOWS_ON_RETRY:
        options["connection_class"] = (
            PrimaryFollowingSSLConnection if parsed.tls else PrimaryFollowingConnection
        )
    client: SentinelRedis = sentinel.master_for(
        parsed.service, redis_class=SentinelRedis, **options
    )
    client.sentinels = sentinel
    return client


def async_client(url: str, **kwargs: Any) -> redis.asyncio.Redis:
    """The asyncio twin of :func:`sync_client`."""
    if not is_sentinel(url):
        return redis.asyncio.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    sentinel = redis.asyncio.sentinel.Sentinel(
        parsed.sentinels, sentinel_kwargs=_sentinel_kwargs(parsed, kwargs)
    )
    client: AsyncSentinelRedis = sentinel.master_for(
        parsed.service, redis_class=AsyncSentinelRedis, **{**parsed.server_options, **kwargs}
    )
    client.sentinels = sentinel
    return client


class PrimaryLocator:
    """Asks the Sentinels of a Sentinel URL where the primary is, for connections that
    redis-py does not make (the receiver's ``RedisLink``)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self.parsed = parse_sentinel_url(url)
        options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        self._sentinel = redis.asyncio.sentinel.Sentinel(
            self.parsed.sentinels, sentinel_kwargs=_sentinel_kwargs(self.parsed, options)
        )

    async def primary(self) -> tuple[str, int]:
        """The primary's address; raises ``MasterNotFoundError`` (a ConnectionError)."""
        host, port = await self._sentinel.discover_master(self.parsed.service)
        return str(host), int(port)

    async def aclose(self) -> None:
        await self._sentinel.aclose()
