"""The Procfile works as is under honcho (a Foreman clone, as Heroku-style hosts run it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis

from hookbird.redis_server import free_port
from tests.commands.processes import wait_for, wait_gone

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    """The Procfile's process types and their commands."""
    types = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            types[name.strip()] = command.strip()
    return types


def dashboard(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """The Procfile's dashboard line under /bin/sh, as honcho runs it."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["/bin/sh", "-c", procfile()["dashboard"]],
            env={
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "DASHBOARD_PORT": str(port),
                **env,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def test_dashboard_refuses_a_public_address_without_a_password(tmp_path: Path) -> None:
    """DASHBOARD_HOST=0.0.0.0 and no RQ_DASHBOARD_PASSWORD: the line exits 1, saying why,
    and nothing listens."""
    port = free_port()
    proc = dashboard({"DASHBOARD_HOST": "0.0.0.0"}, port, tmp_path / "out.log")
    assert proc.wait(30) == 1
    assert "set RQ_DASHBOARD_PASSWORD" in (tmp_path / "out.log").read_text()


def test_dashboard_on_a_public_address_asks_for_the_password(
    redis_url: str, tmp_path: Path
) -> None:
    """With a password the dashboard listens where DASHBOARD_HOST says and answers 401
    without credentials, 200 with them (user ops by default); the Redis URL is not in
    its command line."""
    port, password = free_port(), "procfile-dashboard-password"
    proc = dashboard(
        {"DASHBOARD_HOST": "0.0.0.0", "RQ_DASHBOARD_PASSWORD": password, "REDIS_URL": redis_url},
        port,
        tmp_path / "out.log",
    )
    try:

        def status(**auth: Any) -> int | None:
            if proc.poll() is not None:
                raise AssertionError(f"dashboard exited:\n{(tmp_path / 'out.log').read_text()}")
            try:
                return httpx2.get(f"http://127.0.0.1:{port}/", timeout=1, **auth).status_code
            except httpx2.HTTPError:
                return None

        wait_for(lambda: status() is not None, message="the dashboard")
        assert status() == 401
        assert status(auth=("ops", password)) == 200
        assert redis_url.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_procfile_lines_are_real_commands() -> None:
    """Each line names a process type and a command installed in this environment."""
    bin_dir = Path(sys.executable).parent
    types = {}
    for name, command in procfile().items():
        types[name] = command.rpartition("exec ")[2].split()[0]  # after the dashboard's guard
    assert set(types) >= {"web", "worker", "dashboard"}
    for name, program in types.items():
        assert (bin_dir / program).exists(), f"{name}: {program} is not installed"


def test_honcho_starts_web_worker_and_dashboard(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """`honcho start` runs all three against one Redis: web ready, a worker registered,
    the dashboard answering; Ctrl-C stops every process."""
    port, dashboard_port = free_port(), free_port()
    marker = f"HOOKBIRD_TEST_PROCFILE={tmp_path}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "MONEYBIRD_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        REDIS_URL=redis_url,
        PORT=str(port),
        DASHBOARD_PORT=str(dashboard_port),
        HOOKBIRD_WEBHOOK_TOKEN="procfile-test-token-0123456789",
        HOOKBIRD_ENTRY_POINTS="off",
        HOOKBIRD_SHUTDOWN_GRACE="1",
        HOOKBIRD_TEST_PROCFILE=str(tmp_path),
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "honcho",
                "start",
                "-f",
                str(ROOT / "Procfile"),
                "-d",
                str(ROOT),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def answers(url: str) -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"honcho exited:\n{log.read_text()}")
            try:
                return httpx2.get(url, timeout=1).status_code == 200
            except httpx2.HTTPError:
                return False

        wait_for(lambda: answers(f"http://127.0.0.1:{port}/readyz"), message="web")
        wait_for(lambda: answers(f"http://127.0.0.1:{dashboard_port}/"), message="dashboard")
        wait_for(lambda: redis_client.scard("rq:workers"), message="a registered worker")
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        wait_gone(marker + "\0", timeout=15, output=log.read_text)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
