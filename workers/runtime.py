"""What a worker process holds for every push: settings, handlers, Redis, the client.

``hookbird worker`` installs one :class:`Runtime` before it starts taking jobs (so a
plugin that fails to import stops it at once, and forked children inherit it). A
job run by some other RQ worker builds one from the environment on first use.
The Moneybird client is created on first use, once per process, and shared by
every handler and every push the process runs (its connection pool and its view
of the rate budget).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from hookbird.redis_url import sync_client
from hookbird.routing import Router
from hookbird.settings import Settings
from hookbird.versions import own_write_recorder
from workers.plugins import load_router


class LazyClient:
    """One Moneybird client per process, built the first time a handler needs it."""

    def __init__(self, settings: Settings, connection: redis.Redis) -> None:
        self.settings = settings
        self.redis = connection
        self._client: Any = None
        self._lock = threading.Lock()

    def administration(self, administration_id: str) -> Any:
        with self._lock:
            if self._client is None:
                from hookbird.moneybird import Client

                self._client = Client.for_worker(self.settings, self.redis)
                # what handlers write is noted, so its echo is marked event.own_write
                self._client.on_write = own_write_recorder(self.redis, self.settings.dedup_ttl)
        return self._client.administration(administration_id)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass
class Runtime:
    """Everything :func:`workers.jobs.process_event` needs, built once per process."""

    settings: Settings
    router: Router
    redis: redis.Redis
    moneybird: Callable[[str], Any]
    closers: list[Callable[[], None]] = field(default_factory=list)


_runtime: Runtime | None = None
_lock = threading.Lock()


def build_runtime(
    settings: Settings,
    *,
    router: Router | None = None,
    connection: redis.Redis | None = None,
    moneybird: Callable[[str], Any] | None = None,
) -> Runtime:
    """A Runtime; anything not given comes from ``settings`` (plugins, Redis, client)."""
    if connection is None:
        if not settings.redis_url:
            raise RuntimeError("REDIS_URL is not set")
        connection = sync_client(settings.redis_url)
    closers: list[Callable[[], None]] = []
    if moneybird is None:
        lazy = LazyClient(settings, connection)
        moneybird = lazy.administration
        closers.append(lazy.close)
    return Runtime(
        settings=settings,
        router=router if router is not None else load_router(settings),
        redis=connection,
        moneybird=moneybird,
        closers=closers,
    )


def install(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one this process uses (None: forget it)."""
    global _runtime
    with _lock:
        _runtime = runtime


def current() -> Runtime:
    """The installed Runtime, or one built from the environment on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = build_runtime(Settings.from_env())
        return _runtime
