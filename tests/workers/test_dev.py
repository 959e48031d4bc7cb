"""`hookbird dev` runs a worker next to the receiver and leaves no worker behind on exit."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird.redis_server import free_port
from tests.commands.processes import alive
from tests.workers.conftest import (
    HOOKBIRD,
    ROOT,
    TOKEN,
    calls,
    push_body,
    wait_for,
    worker_env,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL])
def test_dev_handles_pushes_and_its_worker_stops_with_it(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, stop: signal.Signals
) -> None:
    """A push to `hookbird dev` reaches a handler; stopping dev (Ctrl-C or even kill -9)
    stops its worker too."""
    port = free_port()
    log = tmp_path / "dev.log"
    env = worker_env(
        redis_url, HOOKBIRD_WEBHOOK_TOKEN=TOKEN, HOOKBIRD_DATA_DIR=str(tmp_path / "data")
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*HOOKBIRD, "dev", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        found = wait_for(
            lambda: re.search(r"worker +pid (\d+)", log.read_text()), message="the worker"
        )
        worker_pid = int(found[1])

        def accepted() -> bool:
            try:
                response = httpx2.post(
                    f"http://127.0.0.1:{port}/webhooks/moneybird", content=push_body(), timeout=2
                )
            except httpx2.HTTPError:
                return False
            return response.status_code == 200

        wait_for(accepted, message="the receiver")
        wait_for(lambda: calls(redis_client), message="the handler")
        proc.send_signal(stop)
        proc.wait(20)
        wait_for(lambda: not alive(worker_pid), timeout=20, message="the worker to stop")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
