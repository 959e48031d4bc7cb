"""Fixtures for the receiver: the real app under uvicorn on a real socket, real Redis.

Every test that starts a receiver runs twice: once as hookbird serves (pushes that
arrive whole answered by ``ReceiverProtocol`` itself) and once with every push
going through uvicorn's ASGI cycle to the endpoint's ASGI app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx2
import pytest
import redis

from hookbird.settings import Settings
from receiver.app import create_app
from receiver.protocol import ReceiverProtocol
from tests.receiver.pushes import SECRET_KEY, TOKEN
from tests.support import serve_in_thread

MakeReceiver = Callable[..., AbstractContextManager[str]]


class AsgiProtocol(ReceiverProtocol):
    """The receiver's protocol with every push sent the ASGI way."""

    answers_pushes = False


@pytest.fixture(params=[ReceiverProtocol, AsgiProtocol], ids=["shortcut", "asgi"])
def protocol(request: pytest.FixtureRequest) -> type[ReceiverProtocol]:
    protocol: type[ReceiverProtocol] = request.param
    return protocol


@pytest.fixture
def make_receiver(
    redis_url: str, redis_client: redis.Redis, protocol: type[ReceiverProtocol]
) -> MakeReceiver:
    """Start the receiver with settings overridden by keyword (and uvicorn's by
    ``uvicorn_config``); yields its base URL."""

    @contextmanager
    def start(*, uvicorn_config: dict[str, Any] | None = None, **overrides: Any) -> Iterator[str]:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "webhook_token": TOKEN,
            "secret_key": SECRET_KEY,
        }
        values.update(overrides)
        app = create_app(Settings(**values))
        with serve_in_thread(app, http=protocol, **(uvicorn_config or {})) as base:
            yield base

    return start


@pytest.fixture
def receiver(make_receiver: MakeReceiver) -> Iterator[str]:
    """The receiver in single-webhook mode with the test token."""
    with make_receiver() as base:
        yield base


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=10) as client:
        yield client
