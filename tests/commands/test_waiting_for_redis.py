"""CLI commands wait for Redis up to HOOKBIRD_REDIS_OUTAGE_GRACE, saying so, then fail clearly."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hookbird.redis_server import RedisServer
from tests.workers.conftest import HOOKBIRD, ROOT, run_cli, worker_env

pytestmark = pytest.mark.slow


def test_a_command_waits_for_redis_to_come_up(tmp_path: Path) -> None:
    """Redis starting after the command: it waits, says so, then does its work."""
    server = RedisServer(tmp_path / "redis")
    proc = subprocess.Popen(
        [*HOOKBIRD, "events", "list"],
        cwd=ROOT,
        env=worker_env(server.url, HOOKBIRD_REDIS_OUTAGE_GRACE="60"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(proc.stderr.readline).result(timeout=60)
        time.sleep(1)  # a few more tries fail
        server.start()
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.stop()
    assert proc.returncode == 0, first + rest
    assert first.startswith(f"waiting for Redis at {server.url} ("), first
    assert "s left)" in first
    assert "waiting for Redis" not in rest  # one line per 10 s, not one per try


def test_a_command_gives_up_after_the_grace_with_a_clear_error(tmp_path: Path) -> None:
    """Nothing on the port for the whole grace: exit 1, naming Redis, the grace and what to do."""
    server = RedisServer(tmp_path / "redis")  # never started
    began = time.monotonic()
    result = run_cli(server.url, "events", "list", HOOKBIRD_REDIS_OUTAGE_GRACE="2")
    assert result.returncode == 1
    assert time.monotonic() - began >= 2
    assert f"cannot reach Redis at {server.url}" in result.stderr
    assert "HOOKBIRD_REDIS_OUTAGE_GRACE" in result.stderr
    assert "REDIS_URL" in result.stderr
