"""A private Redis primary, its replicas and three Sentinels: for the tests and the benchmarks.

Failover is only proven by failing over: the suite and ``bench/chaos.py --failover``
start real ``redis-server`` processes (:class:`~hookbird.redis_server.RedisServer`)
and real ``redis-server --sentinel`` ones on free ports, with Sentinel timeouts
short enough that a failover takes seconds. ``valkey-server --sentinel`` (the
embedded Valkey) works the same way.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hookbird.redis_server import RedisServer, RedisServerError, find_redis_server, free_port


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Return once ``condition()`` holds; raise :class:`RedisServerError` naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except redis.exceptions.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RedisServerError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


class SentinelProcess:
    """One ``redis-server --sentinel`` on 127.0.0.1, with its config file in ``data_dir``."""

    def __init__(self, data_dir: Path, *, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, monitor: str, timeout: float = 10.0) -> None:
        """Start with ``monitor`` (``sentinel …`` lines) as its configuration; when
        restarted, with the configuration it rewrote."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "sentinel.conf"
        if not config.exists():  # Sentinel rewrites its file with what it learnt
            config.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.data_dir.resolve()}\n"
                f"logfile {(self.data_dir / 'sentinel.log').resolve()}\n{monitor}"
            )
        self.process = subprocess.Popen(
            [find_redis_server(), str(config.resolve()), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with self.client() as client:
            wait_until(client.ping, timeout, f"Sentinel on port {self.port} answering")
            # Sentinel looks at each server every 10 s (INFO) and reconfigures a demoted
            # primary still running after four hello periods (8 s): the window in which
            # it takes writes the new primary never sees. Shorter here (Redis 7.0+ and
            # Valkey), so a failover in the suite is over in about a second.
            client.execute_command(
                "SENTINEL", "DEBUG", "info-period", "500", "publish-period", "250"
            )

    def client(self) -> redis.Redis:
        # No retries: a Sentinel that is down should say so now, not after redis-py's
        # default back-off.
        return redis.Redis(
            port=self.port, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SentinelCluster:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels watching them as ``service``.

    ``down_after_ms`` is how long a primary may be silent before a Sentinel calls it
    down (production: 5,000 to 30,000; here short, so a killed primary is replaced
    within seconds).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        service: str = "hookbird",
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.service = service
        # A replica's first full sync starts at once, not after Redis' default 5 s wait
        # for more replicas to share it.
        quick = ["--repl-diskless-sync-delay", "0"]
        first = RedisServer(self.data_dir / "redis-0", extra_args=quick)
        self.servers = [first] + [
            RedisServer(
                self.data_dir / f"redis-{n}",
                extra_args=[*quick, "--replicaof", "127.0.0.1", str(first.port)],
            )
            for n in range(1, replicas + 1)
        ]
        self.sentinels = [
            SentinelProcess(self.data_dir / f"sentinel-{n}") for n in range(sentinels)
        ]
        self.quorum = sentinels // 2 + 1
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    @property
    def url(self) -> str:
        """``REDIS_URL`` for hookbird: every Sentinel, the service, database 0."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def start(self, timeout: float = 30.0) -> SentinelCluster:
        for server in self.servers:
            server.start()
        self.wait_replicated(len(self.servers) - 1, timeout)
        name = self.service
        monitor = (
            f"sentinel monitor {name} 127.0.0.1 {self.servers[0].port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )
        # Each Sentinel starts knowing the others and the replicas (as it would after
        # its first hello messages), which saves the suite ten seconds per cluster.
        ids = [f"{n + 1:040x}" for n in range(len(self.sentinels))]
        known = "".join(
            f"sentinel known-replica {name} 127.0.0.1 {server.port}\n"
            for server in self.servers[1:]
        )
        for n, sentinel in enumerate(self.sentinels):
            others = "".join(
                f"sentinel known-sentinel {name} 127.0.0.1 {other.port} {ids[m]}\n"
                for m, other in enumerate(self.sentinels)
                if m != n
            )
            sentinel.start(f"sentinel myid {ids[n]}\n{monitor}{known}{others}")
        self.wait_agreed(timeout)
        return self

    def server_at(self, port: int) -> RedisServer:
        return next(server for server in self.servers if server.port == port)

    def primary_port(self) -> int:
        """The primary's port as the first answering Sentinel names it."""
        for sentinel in self.sentinels:
            try:
                with sentinel.client() as client:
                    _host, port = client.sentinel_get_master_addr_by_name(self.service)
                    return int(port)
            except (redis.exceptions.RedisError, TypeError):
                continue
        raise RedisServerError("no Sentinel names a primary")

    @property
    def primary(self) -> RedisServer:
        return self.server_at(self.primary_port())

    def replicas(self) -> list[RedisServer]:
        port = self.primary_port()
        return [server for server in self.servers if server.port != port]

    def wait_replicated(self, count: int, timeout: float = 30.0) -> None:
        """Wait until the primary has ``count`` replicas with their link up and in sync."""

        def synced() -> bool:
            with redis.Redis(port=self._primary_port_or_first(), socket_timeout=2) as client:
                info = client.info("replication")
                online = [
                    value
                    for key, value in info.items()
                    if key.startswith("slave")
                    and isinstance(value, dict)
                    and value.get("state") == "online"
                ]
                return info.get("role") == "master" and len(online) >= count

        wait_until(synced, timeout, f"{count} replica(s) in sync")

    def _primary_port_or_first(self) -> int:
        try:
            return self.primary_port()
        except RedisServerError:
            return self.servers[0].port

    def agreed_port(self) -> int | None:
        """The primary's port if every Sentinel names the same one, knows the others and
        every running replica in good health, and the primary says it is one; else None."""
        ports = set()
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                state = client.sentinel_master(self.service)
            if state["num-other-sentinels"] < len(self.sentinels) - 1:
                return None
            if not state["is_master"] or state["is_sdown"] or state["is_odown"]:
                return None
            ports.add(int(state["port"]))
            with sentinel.client() as client:
                replicas = client.sentinel_slaves(self.service)
            healthy = [
                replica
                for replica in replicas
                if not (replica["is_sdown"] or replica["is_disconnected"])
                and replica.get("master-link-status") == "ok"
            ]
            if len(healthy) < self._running() - 1:  # a replica that could not take over
                return None
        if len(ports) != 1:
            return None
        (port,) = ports
        with redis.Redis(port=port, socket_timeout=2) as client:
            if client.info("replication").get("role") != "master":
                return None
        return port

    def _running(self) -> int:
        return sum(1 for s in self.servers if s.process is not None and s.process.poll() is None)

    def wait_agreed(self, timeout: float = 30.0) -> int:
        """Wait until :meth:`agreed_port` names a primary; its port."""
        wait_until(lambda: self.agreed_port() is not None, timeout, "Sentinels agreeing")
        port = self.agreed_port()
        assert port is not None
        return port

    def failover(self, timeout: float = 30.0) -> int:
        """``SENTINEL FAILOVER``: promote a replica; the new primary's port once the
        failover is over (:meth:`wait_following`)."""
        before = self.primary_port()
        with self.sentinels[0].client() as client:
            client.execute_command("SENTINEL", "FAILOVER", self.service)
        wait_until(lambda: self.agreed_port() not in (None, before), timeout, "a failover")
        new = self.wait_agreed(timeout)
        self.wait_following(new, timeout)
        return new

    def wait_following(self, port: int, timeout: float = 30.0) -> None:
        """Wait until every running server but ``port`` is its replica, link up.

        Sentinel reconfigures a demoted primary that is still running only when it next
        looks at it: until then it takes writes that the new primary never sees. A
        failover is over when this returns.
        """

        def following() -> bool:
            for server in self.servers:
                if server.port == port or server.process is None:
                    continue
                if server.process.poll() is not None:
                    continue
                with redis.Redis(port=server.port, socket_timeout=2) as client:
                    info = client.info("replication")
                if info.get("role") != "slave" or info.get("master_port") != port:
                    return False
                if info.get("master_link_status") != "up":
                    return False
            return True

        wait_until(following, timeout, f"every server replicating from port {port}")

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()

    def __enter__(self) -> SentinelCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
