"""The console's fixtures: a real receiver serving /console, on the test Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import httpx2
import pytest

from hookbird.settings import Settings
from receiver.app import create_app
from tests.support import serve_in_thread
from tests.workers.conftest import TOKEN

PASSWORD = "console-tests-password-0123"

Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def serve_console(redis_url: str) -> Serve:
    """``with serve_console(**settings) as base``: a receiver, console on, at ``base``."""

    @contextmanager
    def serve(**overrides: Any) -> Iterator[str]:
        values: dict[str, Any] = {
            "redis_url": redis_url,
            "webhook_token": TOKEN,
            "console": "open",
        }
        values.update(overrides)
        with serve_in_thread(create_app(Settings(**values))) as base:
            yield base

    return serve


@pytest.fixture
def http() -> Iterator[httpx2.Client]:
    with httpx2.Client(timeout=15) as client:
        yield client
