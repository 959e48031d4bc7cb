"""The processes of a chaos run: Redis, receivers and workers that can be killed and restarted.

:class:`Cluster` starts a Redis with the durability of ``deploy/redis.conf`` (the shipped
file itself is the server's config; only port, bind address, data dir and log file are
set on the command line), ``hookbird serve`` on two ports and ``hookbird worker``
processes, each logging to its own file in ``logs``. Every kill is ``SIGKILL``; Redis
comes back on the same port and data directory, a receiver on the same port, a killed
worker is replaced by a new one. A second Redis (never killed, no persistence needed)
holds the recording handlers' counts.

What becomes of a process that exits on its own is the caller's choice:
:meth:`Cluster.restart_exited` starts it again, as a process manager would;
:meth:`Cluster.note_exited` only counts it, to prove nothing needs a process manager.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx2

from hookbird.redis_server import RedisServer, find_redis_server, free_port
from hookbird.sentinel_cluster import SentinelCluster

ROOT = Path(__file__).resolve().parent.parent
REDIS_CONF = ROOT / "deploy" / "redis.conf"
#: ``hookbird`` in a child process (``-m hookbird.cli`` would load cli.py twice).
HOOKBIRD = (sys.executable, "-c", "import sys; from hookbird.cli import main; sys.exit(main())")


class ShippedConfigRedis(RedisServer):
    """A RedisServer whose config file is ``deploy/redis.conf``: AOF ``everysec`` and all.

    ``fsync_policy`` (``always``) overrides the file's ``appendfsync``, to measure the
    setting that closes the window ``everysec`` leaves.
    """

    fsync_policy: str | None = None

    def command(self) -> list[str]:
        args = super().command()
        binary = args.index(find_redis_server())
        rest = args[binary + 1 :]
        # Keep the shipped durability as it is: drop RedisServer's own AOF and save options.
        for option in ("--appendonly", "--appendfsync", "--save", "--maxmemory-policy"):
            at = rest.index(option)
            del rest[at : at + 2]
        if self.fsync_policy:
            rest += ["--appendfsync", self.fsync_policy]
        return [*args[: binary + 1], str(REDIS_CONF), *rest]


@dataclass
class Secrets:
    """Credentials the run uses; none of them may show up in any log."""

    webhook_token: str = field(default_factory=lambda: "chaos-token-" + os.urandom(12).hex())
    webhook_secret: str = field(default_factory=lambda: "chaos-secret-" + os.urandom(12).hex())
    api_token: str = field(default_factory=lambda: "chaos-api-" + os.urandom(12).hex())
    authorization: str = field(default_factory=lambda: "Bearer chaos-auth-" + os.urandom(12).hex())

    def named(self) -> dict[str, str]:
        return {
            "webhook token": self.webhook_token,
            "signing secret": self.webhook_secret,
            "Moneybird API token": self.api_token,
            "Authorization header": self.authorization,
        }


@dataclass
class Process:
    """One hookbird process and the log file it writes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log: IO[bytes]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        self.log.close()

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


@dataclass
class Kills:
    redis: int = 0
    workers: int = 0
    receivers: int = 0
    #: Processes that exited without being killed (started again unless unsupervised).
    exited: int = 0
    #: Their names and exit statuses, in order.
    exits: list[str] = field(default_factory=list)
    #: Sentinel mode: the primary killed with -9 (a failover follows)
    failovers: int = 0


class Cluster:
    """Redis, two receivers and the workers of one chaos run."""

    def __init__(
        self,
        logs: Path,
        *,
        workers: int = 3,
        receivers: int = 2,
        liveness: float = 3.0,
        handler_sleep: float = 0.002,
        log_level: str = "debug",
        appendfsync: str | None = None,
        sentinel: bool = False,
    ) -> None:
        self.logs = logs
        #: Sentinel mode: a primary, a replica and three Sentinels instead of one Redis,
        #: every process on the redis+sentinel:// URL with HOOKBIRD_MIN_REPLICAS=1.
        self.sentinel = SentinelCluster(logs / "sentinel", down_after_ms=1000) if sentinel else None
        self.secrets = Secrets()
        self.redis = ShippedConfigRedis(logs / "redis-data", log_file=logs / "redis.log")
        self.redis.fsync_policy = appendfsync
        self.counts = RedisServer(
            logs / "counts-data", appendonly=False, log_file=logs / "counts-redis.log"
        )
        self.ports = [free_port() for _ in range(receivers)]
        self.receivers: dict[int, Process] = {}
        self.workers: list[Process] = []
        self.worker_count = workers
        self.liveness = liveness
        self.handler_sleep = handler_sleep
        self.log_level = log_level
        self.kills = Kills()
        #: Processes that exited on their own and were left dead (see note_exited).
        self.dead: list[Process] = []
        self._started = 0
        self._lock = threading.Lock()

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}/webhooks/moneybird" for port in self.ports]

    @property
    def redis_url(self) -> str:
        """REDIS_URL of the run's processes: the Redis, or its Sentinels."""
        return self.sentinel.url if self.sentinel is not None else self.redis.url

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "MONEYBIRD_"))}
        env.update(
            REDIS_URL=self.redis_url,
            CHAOS_COUNTS_URL=self.counts.url,
            CHAOS_HANDLER_SLEEP=str(self.handler_sleep),
            HOOKBIRD_WEBHOOK_TOKEN=self.secrets.webhook_token,
            HOOKBIRD_WEBHOOK_SECRET=self.secrets.webhook_secret,
            MONEYBIRD_API_TOKEN=self.secrets.api_token,
            HOOKBIRD_HANDLERS="bench.chaos_handlers",
            HOOKBIRD_ENTRY_POINTS="off",
            HOOKBIRD_WORKER_LIVENESS=str(self.liveness),
            HOOKBIRD_RETRY_BASE="1",
            HOOKBIRD_SHUTDOWN_GRACE="2",
            HOOKBIRD_REDIS_TIMEOUT="1",
            HOOKBIRD_RETRY_AFTER="1",
            HOOKBIRD_LOG_FORMAT="json",
            HOOKBIRD_LOG_LEVEL=self.log_level,
            HOOKBIRD_LOG_EACH_PUSH="true",
            PYTHONPATH=str(ROOT),
        )
        if self.sentinel is not None:
            env.update(HOOKBIRD_MIN_REPLICAS="1", HOOKBIRD_MIN_REPLICAS_TIMEOUT="0.5")
        return env

    # -- starting -------------------------------------------------------------------
    def _spawn(self, name: str, *args: str) -> Process:
        with self._lock:
            self._started += 1
            number = self._started
        log = (self.logs / f"{name}-{number}.log").open("wb")
        popen = subprocess.Popen(
            [*HOOKBIRD, *args], cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        return Process(f"{name}-{number}", popen, log)

    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.counts.start()
        if self.sentinel is not None:
            self.sentinel.start()
        else:
            self.redis.start()
        for port in self.ports:
            self.start_receiver(port)
        for _ in range(self.worker_count):
            self.workers.append(self._spawn("worker", "worker"))

    def start_receiver(self, port: int, timeout: float = 30) -> None:
        process = self._spawn(f"receiver-{port}", "serve", "--port", str(port))
        self.receivers[port] = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx2.HTTPError:
                pass
            if not process.alive():
                raise RuntimeError(f"{process.name} exited; see {self.logs}")
            time.sleep(0.05)
        raise RuntimeError(f"{process.name} did not come up within {timeout} s")

    # -- chaos ----------------------------------------------------------------------
    def kill_redis(self, down: float) -> None:
        """kill -9 Redis, leave it down ``down`` seconds, start it on the same data."""
        self.redis.kill()
        self.kills.redis += 1
        time.sleep(down)
        self.redis.start(timeout=60)

    def kill_primary(self, down: float) -> None:
        """Sentinel mode: kill -9 the primary, leave it down ``down`` seconds (the
        Sentinels promote the replica), start it again on its data: it rejoins as a
        replica of the new primary."""
        assert self.sentinel is not None
        primary = self.sentinel.primary
        primary.kill()
        self.kills.failovers += 1
        time.sleep(down)
        primary.start(timeout=60)
        new = self.sentinel.wait_agreed(timeout=60)
        self.sentinel.wait_following(new, timeout=60)

    def kill_worker(self) -> None:
        """kill -9 one worker (mid-push, most likely) and start a new one."""
        alive = [w for w in self.workers if w.alive()]
        if not alive:
            return  # unsupervised, and every worker has died on its own (reported)
        victim = random.choice(alive)
        victim.kill()
        self.workers.remove(victim)
        self.kills.workers += 1
        self.workers.append(self._spawn("worker", "worker"))

    def kill_receiver(self) -> None:
        """kill -9 one receiver and start it again on the same port."""
        if not self.receivers:
            return  # unsupervised, and every receiver has died on its own (reported)
        port = random.choice(list(self.receivers))
        self.receivers[port].kill()
        self.kills.receivers += 1
        self.start_receiver(port)

    def restart_exited(self) -> None:
        """What a process manager does: start again whatever exited on its own."""
        for worker in [w for w in self.workers if not w.alive()]:
            self._exited(worker)
            self.workers.remove(worker)
            self.workers.append(self._spawn("worker", "worker"))
        for port, receiver in list(self.receivers.items()):
            if not receiver.alive():
                self._exited(receiver)
                self.start_receiver(port)

    def note_exited(self) -> None:
        """No process manager: count what exited on its own, and leave it dead."""
        for worker in [w for w in self.workers if not w.alive()]:
            self._exited(worker)
            self.workers.remove(worker)
            self.dead.append(worker)
        for port, receiver in list(self.receivers.items()):
            if not receiver.alive():
                self._exited(receiver)
                del self.receivers[port]
                self.dead.append(receiver)

    def _exited(self, process: Process) -> None:
        process.log.close()
        self.kills.exited += 1
        self.kills.exits.append(f"{process.name} (exit {process.popen.returncode})")

    def stop(self) -> None:
        for process in [*self.workers, *self.receivers.values()]:
            if process.alive():
                process.popen.send_signal(signal.SIGTERM)
        for process in [*self.workers, *self.receivers.values()]:
            process.stop()
        if self.sentinel is not None:
            self.sentinel.stop()
        else:
            self.redis.stop()
        self.counts.stop()
