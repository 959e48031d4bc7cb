"""`hookbird serve` as a real process: the production receiver stores a push and stops cleanly."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird import keys
from hookbird.redis_server import free_port
from tests.commands.processes import wait_for
from tests.receiver.pushes import TOKEN, push_body
from tests.workers.conftest import HOOKBIRD, worker_env

pytestmark = pytest.mark.slow


def test_serve_stores_a_push_and_stops_on_sigterm(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*HOOKBIRD, "serve", "--port", str(port)],
            cwd=tmp_path,
            env=worker_env(redis_url, HOOKBIRD_WEBHOOK_TOKEN=TOKEN),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            return httpx2.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_for(ready, message="hookbird serve to answer /healthz")
        response = httpx2.post(f"{base}/webhooks/moneybird", content=push_body(), timeout=5)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "accepted"
        assert redis_client.lrange(keys.rq_queue_key("hookbird"), 0, -1) == [
            answer["event_id"].encode()
        ]
        assert redis_client.exists(keys.event_key(answer["event_id"]))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    output = log.read_text()
    # uvicorn finishes its shutdown, then lets the signal end the process as it would have
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output
    assert TOKEN not in output
