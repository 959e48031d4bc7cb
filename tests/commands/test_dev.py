"""The README's run command end to end: `hookbird dev` as a real process, then `hookbird send`.

No REDIS_URL: dev starts its private Redis under the data dir. Every child inherits
the test's unique HOOKBIRD_DATA_DIR, so scanning /proc for it finds any orphan, except
Redis, whose title overwrites its environment: it is followed by the pid it reports.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx2
import pytest
import redis

from hookbird.redis_server import free_port
from tests.commands.processes import alive, processes_with, wait_for, wait_gone

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
HOOKBIRD = (sys.executable, "-c", "import sys; from hookbird.cli import main; sys.exit(main())")


class Dev:
    """`hookbird dev` in a folder, with its output in a log file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data_dir = folder / "data"
        self.port = free_port()
        self.dashboard_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "MONEYBIRD_"))}
        env.pop("REDIS_URL", None)
        env.update(
            HOOKBIRD_DATA_DIR=str(self.data_dir),
            HOOKBIRD_LOG_FORMAT="json",
            HOOKBIRD_SHUTDOWN_GRACE="2",
            PYTHONPATH=str(ROOT),
        )
        self.env = env
        self.runs = 0
        self.marker = f"HOOKBIRD_DATA_DIR={self.data_dir}\0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.redis_pid: int | None = None

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        self.runs += 1
        self.log = self.folder / f"dev-{self.runs}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    *HOOKBIRD,
                    "dev",
                    "--port",
                    str(self.port),
                    "--dashboard-port",
                    str(self.dashboard_port),
                    *args,
                ],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(self.ready, message=f"hookbird dev to be ready:\n{self.output()}")
        # dev, its worker and the worker's scheduler (and the dashboard) carry the marker
        assert len(processes_with(self.marker)) >= 3
        client = self.redis()
        self.redis_pid = int(client.info("server")["process_id"])
        client.close()
        assert self.owns(self.redis_pid), "dev's Redis should run in its data dir"
        return self.proc

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` is a live process working in this dev's data dir (its Redis)."""
        try:
            cwd = Path(f"/proc/{pid}/cwd").resolve(strict=True)
        except OSError:
            return False
        return alive(pid) and cwd.is_relative_to(self.data_dir.resolve())

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"hookbird dev exited:\n{self.output()}")
        try:
            return httpx2.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def redis(self) -> redis.Redis:
        found = re.search(r"redis +(redis://\S+)", self.output())
        assert found, self.output()
        return redis.Redis.from_url(found[1])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*HOOKBIRD, *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def stop(self, how: signal.Signals) -> None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(how)
        self.proc.wait(30)
        redis_pid = () if self.redis_pid is None else (self.redis_pid,)
        # dev's log has its children's
        wait_gone(self.marker, timeout=15, output=self.output, pids=redis_pid)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Dev]:
    running = Dev(tmp_path)
    yield running
    if running.proc is not None and running.proc.poll() is None:
        running.proc.kill()
        running.proc.wait()
    leftover = processes_with(running.marker)
    if running.redis_pid is not None and running.owns(running.redis_pid):
        leftover.append(running.redis_pid)
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)


def contacts(dev: Dev) -> list[tuple[str, str]]:
    path = dev.data_dir / "hookbird-example.sqlite3"
    if not path.exists():
        return []
    with closing(sqlite3.connect(path)) as db:
        try:
            return list(db.execute("SELECT id, company_name FROM contacts"))
        except sqlite3.OperationalError:
            return []


def test_dev_then_send_is_handled_and_stops_cleanly(dev: Dev) -> None:
    """Fresh folder: dev starts Redis, receiver, worker, dashboard; `hookbird send
    contact_created` (no flags: dev's port and token) reaches the example plugin;
    Ctrl-C leaves no process behind."""
    dev.start()
    banner = dev.output()
    assert f"POST http://127.0.0.1:{dev.port}/webhooks/moneybird" in banner
    assert "metrics" in banner
    token = (dev.data_dir / "dev-webhook-token").read_text().strip()
    assert f"webhook_token={token}" in banner
    sent = dev.cli("send", "contact_created")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("200 accepted")
    wait_for(lambda: contacts(dev), timeout=10, message="the example plugin to store the contact")
    assert contacts(dev)[0] == ("496081411808167496", "Foobar Holding B.V.")
    assert '"push accepted"' in dev.output()  # per-push log lines are on in dev
    assert f"console    http://127.0.0.1:{dev.port}/console/" in banner
    console = httpx2.get(f"http://127.0.0.1:{dev.port}/console/", timeout=10)
    assert console.status_code == 200  # on 127.0.0.1 dev serves it without a password
    assert "contact_created" in console.text
    if "rq-dashboard, pid" in banner:
        page = httpx2.get(f"http://127.0.0.1:{dev.dashboard_port}/", timeout=5)
        assert page.status_code == 200
    assert (dev.data_dir / "dev.json").is_file()
    dev.stop(signal.SIGINT)
    assert dev.proc is not None
    assert dev.proc.returncode == 0
    assert json.loads((dev.data_dir / "dev.json").read_text())["pid"] is None  # not running


def listening(port: int) -> set[str]:
    """The IPv4 and IPv6 addresses (as /proc/net shows them) listening on ``port``."""
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@pytest.mark.skipif(not importlib.util.find_spec("rq_dashboard"), reason="rq-dashboard")
def test_dev_on_every_interface_keeps_the_dashboard_local(dev: Dev) -> None:
    """`dev --host 0.0.0.0`: the receiver listens everywhere, the dashboard (no password,
    can delete jobs) only on 127.0.0.1, and the banner says so; the Redis URL is not on
    the dashboard's command line, where any local user could read it."""
    dev.start("--host", "0.0.0.0")
    banner = dev.output()
    found = re.search(
        r"dashboard +http://127\.0\.0\.1:\d+/ +\(rq-dashboard, pid (\d+); local only", banner
    )
    assert found, banner
    pid = int(found[1])
    wait_for(lambda: listening(dev.dashboard_port), message=f"the dashboard:\n{dev.output()}")
    assert listening(dev.dashboard_port) == {"0100007F"}  # 127.0.0.1
    assert listening(dev.port) == {"00000000"}  # 0.0.0.0: --host still counts for the receiver
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"rq_dashboard" in cmdline
    assert b"redis://" not in cmdline
    assert b"RQ_DASHBOARD_REDIS_URL=redis://" in Path(f"/proc/{pid}/environ").read_bytes()
    assert "console    off: on 0.0.0.0 it needs HOOKBIRD_CONSOLE_PASSWORD" in banner
    assert httpx2.get(f"http://127.0.0.1:{dev.port}/console/", timeout=10).status_code == 404
    dev.stop(signal.SIGINT)


def test_restart_keeps_redis_data_and_kill_9_leaves_no_orphans(dev: Dev) -> None:
    """A second dev in the same folder finds the first one's queued data; a concurrent
    one is refused; kill -9 of dev still takes Redis, worker and dashboard down."""
    dev.start()
    sent = dev.cli("send", "contact_changed", "--count", "2")
    assert sent.returncode == 0, sent.stderr
    first = dev.redis()
    keys = wait_for(lambda: sorted(first.scan_iter("hookbird:event:*")), message="stored pushes")
    first.close()
    dev.stop(signal.SIGTERM)

    dev.start()
    again = dev.redis()
    assert sorted(again.scan_iter("hookbird:event:*")) == keys
    again.close()
    other = dev.cli("dev", "--port", str(free_port()), "--no-dashboard")
    assert other.returncode == 1
    assert "another `hookbird dev`" in other.stderr
    dev.stop(signal.SIGKILL)


def test_every_command_finds_dev_and_its_redis_port_is_kept(dev: Dev) -> None:
    """With dev running and no REDIS_URL, `events list`, `doctor` and `config` use dev's
    Redis (config says so); a restarted dev comes back on the same Redis port."""
    dev.start()
    sent = dev.cli("send", "contact_created")
    assert sent.returncode == 0, sent.stderr
    listed = dev.cli("events", "list")
    assert listed.returncode == 0, listed.stderr
    assert "contact_created" in listed.stdout
    doctor = dev.cli("doctor", "--ascii")
    assert doctor.stdout.startswith("ok   Redis reachable at redis://127.0.0.1:"), doctor.stdout
    shown = dev.cli("config").stdout
    client = dev.redis()
    url = client.connection_pool.connection_kwargs
    client.close()
    assert re.search(
        rf"^REDIS_URL +redis://127.0.0.1:{url['port']}/0  \(from the `hookbird dev`", shown, re.M
    ), shown
    assert re.search(r"^HOOKBIRD_WEBHOOK_TOKEN +\(set\)  \(from the `hookbird dev`", shown, re.M)
    assert oct((dev.data_dir / "dev.json").stat().st_mode & 0o777) == "0o600"
    dev.stop(signal.SIGINT)
    gone = dev.cli("events", "list")
    assert gone.returncode == 1
    assert "REDIS_URL is not set" in gone.stderr

    dev.start()
    again = dev.redis()
    assert again.connection_pool.connection_kwargs["port"] == url["port"]
    again.close()
    dev.stop(signal.SIGINT)


@pytest.mark.parametrize("flag", ["--port", "--redis-port", "--dashboard-port"])
def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path, flag: str) -> None:
    """A port something else listens on stops dev at once, naming the flag to change;
    no Redis, worker or dashboard is started first."""
    if flag == "--dashboard-port" and importlib.util.find_spec("rq_dashboard") is None:
        pytest.skip("rq-dashboard is not installed: dev starts no dashboard")
    running = Dev(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        ports = {"--port": str(running.port), "--dashboard-port": str(running.dashboard_port)}
        ports[flag] = port
        result = running.cli("dev", *(a for item in ports.items() for a in item))
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert f"choose another with {flag}" in result.stderr
    assert not (running.data_dir / "redis").exists()
    assert processes_with(running.marker) == []


BROKEN_LATER = """\
from hookbird import Router

router = Router()


@router.on("contact_created")
def greet(event, ctx):
    pass
"""


def test_a_dead_worker_is_restarted_and_a_broken_handler_stops_dev(dev: Dev) -> None:
    """A worker killed under dev is reported with its exit and restarted; once its handler
    module no longer imports, the next death stops dev (exit 1) with the import error."""
    (dev.folder / "mymodule.py").write_text(BROKEN_LATER)
    dev.env.update(HOOKBIRD_HANDLERS="mymodule", HOOKBIRD_ENTRY_POINTS="off")
    dev.start()
    first = int(wait_for(lambda: re.search(r"worker +pid (\d+)", dev.output()))[1])
    os.kill(first, signal.SIGKILL)
    wait_for(
        lambda: re.search(r"the worker runs again, pid (\d+)", dev.output()),
        message=f"the worker to be restarted:\n{dev.output()}",
    )
    assert f"the worker (pid {first}) died after" in dev.output()
    assert "with signal 9" in dev.output()
    second = int(re.findall(r"worker +pid (\d+)", dev.output())[-1])
    assert second != first
    with (dev.folder / "mymodule.py").open("a") as module:
        module.write("\nraise ImportError('mymodule was edited badly')\n")
    os.kill(second, signal.SIGKILL)
    assert dev.proc is not None
    dev.proc.wait(60)
    assert dev.proc.returncode == 1, dev.output()
    assert "dev stopped: the worker cannot run" in dev.output()
    assert "mymodule.py, line 10): ImportError: mymodule was edited badly" in dev.output()
    dev.stop(signal.SIGINT)


def test_a_handler_that_does_not_import_stops_dev_before_it_starts(tmp_path: Path) -> None:
    """dev with a handler module that has a syntax error starts nothing and says where."""
    running = Dev(tmp_path)
    (tmp_path / "mymodule.py").write_text("x = (\n")
    running.env.update(HOOKBIRD_HANDLERS="mymodule", HOOKBIRD_ENTRY_POINTS="off")
    result = running.cli("dev", "--port", str(running.port), "--no-dashboard")
    assert result.returncode == 1
    assert "mymodule.py, line 1): SyntaxError" in result.stderr
    assert not (running.data_dir / "redis").exists()
