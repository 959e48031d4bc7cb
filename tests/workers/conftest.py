"""Fixtures for the worker tests: the real receiver, real worker processes, real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis

from hookbird.settings import Settings
from receiver.app import create_app
from tests.support import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "worker-tests-webhook-token-0123"
HANDLERS = "tests.workers.sample_handlers"
#: ``hookbird`` in a child process (``-m hookbird.cli`` would load cli.py twice).
HOOKBIRD = (sys.executable, "-c", "import sys; from hookbird.cli import main; sys.exit(main())")


def push_body(**fields: Any) -> bytes:
    data: dict[str, Any] = {
        "administration_id": "123",
        "webhook_id": "4180000000000000001",
        "webhook_token": TOKEN,
        "entity_type": "Contact",
        "entity_id": "456",
        "state": "active",
        "action": "contact_created",
        "entity": {"id": "456", "company_name": "Parkeerbedrijf", "version": 100},
    }
    data.update(fields)
    return json.dumps(data).encode()


class Pusher:
    """Sends pushes through the real receiver, as Moneybird would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx2.Client(timeout=10)
        self.count = 0

    def __call__(self, **fields: Any) -> str:
        self.count += 1
        response = self.http.post(
            f"{self.base}/webhooks/moneybird",
            content=push_body(**fields),
            headers={"Idempotency-Key": f"idem-{time.time_ns()}-{self.count}"},
        )
        assert response.status_code == 200, response.text
        event_id: str = response.json()["event_id"]
        return event_id


@pytest.fixture
def push(redis_url: str, redis_client: redis.Redis) -> Iterator[Pusher]:
    settings = Settings(redis_url=redis_url, webhook_token=TOKEN)
    with serve_in_thread(create_app(settings)) as base:
        pusher = Pusher(base)
        yield pusher
        pusher.http.close()


def worker_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "MONEYBIRD_"))}
    env.update(
        REDIS_URL=redis_url,
        HOOKBIRD_HANDLERS=HANDLERS,
        HOOKBIRD_ENTRY_POINTS="off",
        HOOKBIRD_RETRY_BASE="1",
        HOOKBIRD_WORKER_LIVENESS="2",
        HOOKBIRD_SHUTDOWN_GRACE="1",
        HOOKBIRD_LOG_FORMAT="json",
        HOOKBIRD_LOG_LEVEL="info",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


class Workers:
    """Starts ``hookbird worker`` processes and stops every one at the end of the test."""

    def __init__(self, redis_url: str, logs: Path) -> None:
        self.redis_url = redis_url
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        with open(self.logs / f"worker-{len(self.procs)}.log", "wb") as log:
            proc = subprocess.Popen(
                [*HOOKBIRD, "worker", *args],
                cwd=ROOT,
                env=worker_env(self.redis_url, **env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def output(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.logs.glob("worker-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(redis_url: str, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(redis_url, tmp_path)
    yield group
    group.stop_all()


def wait_for(
    check: Callable[[], Any], timeout: float = 15, message: str = "condition", every: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``message`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(every)


def calls(client: redis.Redis, key: str = "test:calls") -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


def run_cli(
    redis_url: str, *args: str, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``hookbird ARGS`` in a real process against the test Redis."""
    return subprocess.run(
        [*HOOKBIRD, *args],
        cwd=ROOT,
        env=worker_env(redis_url, **env),
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
