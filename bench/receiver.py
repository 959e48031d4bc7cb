"""Benchmark: hookbird's receiver against a bare Starlette endpoint, driven by wrk.

One run starts a Redis with AOF ``everysec``, then (a) the bare endpoint in
``bench/bare_app.py`` and (b) hookbird's receiver (``hookbird serve``, single-webhook
token mode, default settings and logging), each as one uvicorn process. wrk sends
unique ~2 KB pushes with unique ``Idempotency-Key`` headers (``bench/push.lua``):
Moneybird's example contact as ``contact_changed``, a different contact each time
(``bench/pushbody.py``).
Both servers stay up and take turns for three rounds: on a shared 2-CPU machine
one 10 s run swings by a quarter either way, and interleaved rounds give both the
same weather. The table shows each server's median round (req/s, p50, p99, every
round's req/s), CPU per request of the server, Redis, Redis's AOF rewrites (the
forked children rewriting the AOF as it grows, counted once each has finished) and
wrk, the share of the round the server ran and waited for a CPU (from the kernel's
schedstat: a server that waits is sharing a CPU with Redis or wrk), and hookbird's
throughput as a ratio of bare.

After each of hookbird's runs (the warm-up too) every 200 it gave is checked
against the queue, the RQ job hashes and the stored pushes in Redis, and then
Redis is emptied (its freed memory given back, its AOF rewritten), so each round
starts from an empty Redis as a single run would:
a Redis that has just taken three rounds' pushes (about a gigabyte) spends a
third more CPU on each new one, page-faulting fresh memory and growing its
tables, and the rounds would no longer measure the same thing. ``--keep-data``
keeps everything and checks once at the end instead.

Targets: ratio of the medians >= 0.50, p99 <= 20 ms in every round, every 200
backed by a job.

    .venv/bin/python bench/receiver.py                 # 3 rounds of 10 s each, 32 connections
    .venv/bin/python bench/receiver.py --duration 30 --connections 64
    .venv/bin/python bench/receiver.py --appendfsync always   # the cost of fsync per write
    .venv/bin/python bench/receiver.py --keep-data     # Redis keeps every round's pushes
    .venv/bin/python bench/receiver.py --replica       # + the receiver with MIN_REPLICAS=1

``--replica`` gives Redis a replica (a second redis-server with ``replicaof``) and adds
a third server to the same rounds: hookbird's receiver with ``HOOKBIRD_MIN_REPLICAS=1``,
so the cost of waiting for the replica (one ``WAIT`` per batch) is measured in the same
weather as the receiver without it.

Needs ``wrk`` (Debian: apt-get install wrk). By default the operating system places
the processes; ``--pin`` puts the server on CPU 0 and wrk and Redis on the others
(on a 2-CPU machine that gives the bare server a core of its own while hookbird's
Redis shares wrk's, so the ratio comes out lower).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pushbody  # noqa: E402
from hookbird import keys  # noqa: E402
from hookbird.redis_server import RedisServer, free_port  # noqa: E402

TOKEN = "bench-webhook-token-0123456789"


@dataclass
class Audit:
    """hookbird's 200s in a run against what Redis holds afterwards."""

    oks: int
    queued: int
    jobs: int
    events: int
    slack: int  # wrk stops mid-flight: pushes stored as it quit were never counted as 200s

    @property
    def backed(self) -> bool:
        return self.queued == self.jobs == self.events and (
            self.oks <= self.queued <= self.oks + self.slack
        )

    def __add__(self, other: Audit) -> Audit:
        return Audit(
            self.oks + other.oks,
            self.queued + other.queued,
            self.jobs + other.jobs,
            self.events + other.events,
            self.slack + other.slack,
        )


def settle(client: redis.Redis, timeout: float = 5.0) -> None:
    """Wait until the receiver has stored what wrk left in flight when it quit.

    A script call that lands between counting the queue and counting the jobs
    would make them disagree.
    """
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        now = client.llen(keys.rq_queue_key("hookbird"))
        if now == last:
            return
        last = now
        time.sleep(0.3)


def aof_rewrite_done(client: redis.Redis, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        time.sleep(0.1)


def reset(client: redis.Redis) -> None:
    """Empty Redis and leave it as close to a fresh one as it gets.

    After FLUSHALL alone the allocator still holds a gigabyte of freed pages, and
    the AOF's next rewrite is far off; two rounds after such a flush had p99s of
    126 and 348 ms. Both are cleared here before the next run (one round since
    still reached 38 ms, so this may not be the whole story).
    """
    aof_rewrite_done(client)  # BGREWRITEAOF refuses to start while one runs
    client.flushall()
    client.memory_purge()
    client.bgrewriteaof()
    aof_rewrite_done(client)


def audit(client: redis.Redis, oks: int, slack: int) -> Audit:
    settle(client)
    return Audit(
        oks=oks,
        queued=client.llen(keys.rq_queue_key("hookbird")),
        jobs=sum(1 for _ in client.scan_iter("rq:job:*", count=1000)),
        events=sum(1 for _ in client.scan_iter("hookbird:event:*", count=1000)),
        slack=slack,
    )


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    errors: int
    #: CPU seconds used during the measured run by the server, Redis, its AOF rewrites, wrk
    cpu: dict[str, float] | None = None
    #: seconds the server's threads ran and waited on a run queue for a CPU (schedstat)
    sched: tuple[float, float] | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wait_replica(client: redis.Redis, timeout: float = 60.0) -> None:
    """Wait until the primary behind ``client`` has a replica online."""
    deadline = time.monotonic() + timeout
    while client.info("replication").get("slave0", {}).get("state") != "online":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the replica did not come online within {timeout} s")
        time.sleep(0.1)


def pin(cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus] if cpus and shutil.which("taskset") else []


def wait_ready(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx2.post(url, content=b"{}", timeout=1)
            return
        except httpx2.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_sched(pid: int) -> tuple[float, float] | None:
    """Seconds a process's threads have run and have waited for a CPU while runnable.

    From ``/proc/<pid>/task/*/schedstat``; None where the kernel does not keep it.
    A server that waits for a CPU is sharing one with Redis or wrk.
    """
    ran = waited = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            fields = (task / "schedstat").read_text().split()
            ran, waited = ran + int(fields[0]), waited + int(fields[1])
    except (OSError, IndexError, ValueError):
        return None
    return ran / 1e9, waited / 1e9


def redis_cpu(client: redis.Redis) -> tuple[float, float]:
    """CPU seconds of Redis itself and of its finished children (the AOF rewrites)."""
    info = client.info("cpu")
    return (
        float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
        float(info["used_cpu_user_children"]) + float(info["used_cpu_sys_children"]),
    )


def run_wrk(
    url: str,
    *,
    template: Path,
    seconds: int,
    connections: int,
    threads: int,
    cpus: str | None,
) -> Result:
    command = [
        *pin(cpus),
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "-s",
        str(ROOT / "bench" / "push.lua"),
        url,
    ]
    env = {**os.environ, "BENCH_TEMPLATE": str(template), "BENCH_RUN": os.urandom(6).hex()}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as wrk:
        assert wrk.stdout is not None
        output = wrk.stdout.read()
        _, status, usage = os.wait4(wrk.pid, 0)
        wrk.returncode = os.waitstatus_to_exitcode(status)
    if wrk.returncode != 0:
        raise RuntimeError(f"wrk exited with {wrk.returncode}")
    line = next(x for x in output.splitlines() if x.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Result(
        name="",
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        statuses=data["statuses"],
        errors=data["errors"],
        cpu={"wrk": usage.ru_utime + usage.ru_stime},
    )


class Server:
    """One server under test, kept running across the rounds."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], port: int, log: Path
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.url = f"http://127.0.0.1:{port}/webhooks/moneybird"
        self.log = log
        self.rounds: list[Result] = []
        self.warmup_200s = 0

    def __enter__(self) -> Server:
        self._log_file = self.log.open("w")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=self._log_file, stderr=self._log_file, cwd=ROOT
        )
        wait_ready(self.url)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(20)
        self._log_file.close()

    def measure(self, args: argparse.Namespace, client: redis.Redis, seconds: int) -> Result:
        server_before, redis_before = process_cpu(self.process.pid), redis_cpu(client)
        sched_before = process_sched(self.process.pid)
        result = run_wrk(
            self.url,
            template=args.template,
            seconds=seconds,
            connections=args.connections,
            threads=args.threads,
            cpus=args.client_cpus,
        )
        assert result.cpu is not None
        result.cpu["server"] = process_cpu(self.process.pid) - server_before
        sched_after = process_sched(self.process.pid)
        if sched_before and sched_after:
            result.sched = (
                sched_after[0] - sched_before[0],
                sched_after[1] - sched_before[1],
            )
        aof_rewrite_done(client)  # a rewrite's CPU is counted when it has finished
        redis_after = redis_cpu(client)
        result.cpu["Redis"] = redis_after[0] - redis_before[0]
        result.cpu["AOF rewrite"] = redis_after[1] - redis_before[1]
        result.name = self.name
        return result

    @property
    def median(self) -> Result:
        """The round with the median throughput."""
        return sorted(self.rounds, key=lambda r: r.rps)[len(self.rounds) // 2]

    def oks(self) -> int:
        return self.warmup_200s + sum(r.statuses.get("200", 0) for r in self.rounds)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds per server and round (10)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, servers taking turns (3)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up seconds (2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument(
        "--pin", action="store_true", help="server on CPU 0, wrk and Redis on the other CPUs"
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep every round's pushes in Redis (default: check, then empty it after each)",
    )
    parser.add_argument(
        "--replica",
        action="store_true",
        help="give Redis a replica and add the receiver with HOOKBIRD_MIN_REPLICAS=1",
    )
    parser.add_argument(
        "--appendfsync",
        choices=("everysec", "always"),
        default="everysec",
        help="Redis's AOF fsync policy (everysec, as deploy/redis.conf)",
    )
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    pinned = args.pin and cpus > 1
    args.server_cpus = "0" if pinned else None
    args.client_cpus = f"1-{cpus - 1}" if pinned else None
    if not shutil.which("wrk"):
        print("bench/receiver.py needs wrk: apt-get install wrk", file=sys.stderr)
        return 2

    python = sys.executable
    hookbird_cli = str(Path(python).with_name("hookbird"))
    with tempfile.TemporaryDirectory(prefix="hookbird-bench-") as tmp:
        data = Path(tmp)
        args.template = data / "push.json"
        args.template.write_bytes(pushbody.template(TOKEN))
        redis_server = RedisServer(
            data / "redis", appendfsync=args.appendfsync, launcher=pin(args.client_cpus)
        )
        redis_server.start()
        client = redis.Redis.from_url(redis_server.url)
        replica: RedisServer | None = None
        if args.replica:
            replica = RedisServer(
                data / "replica",
                appendfsync=args.appendfsync,
                launcher=pin(args.client_cpus),
                extra_args=["--replicaof", "127.0.0.1", str(redis_server.port)],
            ).start()
            wait_replica(client)
        base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
        bare_port, port = free_port(), free_port()
        bare = Server(
            "bare Starlette",
            [
                *pin(args.server_cpus),
                python,
                "-m",
                "uvicorn",
                "bench.bare_app:app",
                "--port",
                str(bare_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            base_env,
            bare_port,
            data / "bare.log",
        )
        env = {
            **base_env,
            "REDIS_URL": redis_server.url,
            "HOOKBIRD_WEBHOOK_TOKEN": TOKEN,
            "HOOKBIRD_LOG_FORMAT": "json",
        }
        hookbird = Server(
            "hookbird receiver",
            [*pin(args.server_cpus), hookbird_cli, "serve", "--port", str(port)],
            env,
            port,
            data / "hookbird.log",
        )
        servers = [bare, hookbird]
        if replica is not None:
            replicated_port = free_port()
            servers.append(
                Server(
                    "MIN_REPLICAS=1",
                    [*pin(args.server_cpus), hookbird_cli, "serve", "--port", str(replicated_port)],
                    {**env, "HOOKBIRD_MIN_REPLICAS": "1"},
                    replicated_port,
                    data / "replicated.log",
                )
            )
        audits: list[Audit] = []

        def check(result: Result) -> None:
            """Count hookbird's 200s against Redis, then empty it for the next run."""
            if not args.keep_data:
                audits.append(audit(client, result.statuses.get("200", 0), args.connections))
                reset(client)

        try:
            with contextlib.ExitStack() as running:
                for server in servers:
                    running.enter_context(server)
                for server in servers:
                    warmup = server.measure(args, client, args.warmup)
                    server.warmup_200s = warmup.statuses.get("200", 0)
                    if server is not bare:
                        check(warmup)
                for _ in range(args.rounds):
                    for server in servers:
                        server.rounds.append(server.measure(args, client, args.duration))
                        if server is not bare:
                            check(server.rounds[-1])
            if args.keep_data:
                oks = sum(server.oks() for server in servers[1:])
                runs = (args.rounds + 1) * (len(servers) - 1)
                audits.append(audit(client, oks, runs * args.connections))
            aof = client.config_get("appendonly")["appendonly"]
            fsync = client.config_get("appendfsync")["appendfsync"]
        finally:
            client.close()
            if replica is not None:
                replica.stop()
            redis_server.stop()
        log_lines = sum(1 for _ in (data / "hookbird.log").open())

    print(
        f"\nhookbird receiver benchmark: {args.rounds} rounds of wrk -t{args.threads} "
        f"-c{args.connections} -d{args.duration}s per server, taking turns; unique ~2 KB "
        f"{pushbody.ACTION} pushes; Redis appendonly={aof} appendfsync={fsync}; "
        + (
            f"server on CPU {args.server_cpus}, wrk + Redis on CPU {args.client_cpus}"
            if pinned
            else f"processes placed by the OS on {cpus} CPUs"
        )
        + "\n"
    )
    print("Each server's round with the median throughput:\n")
    print(
        f"| {'server':<18} | {'req/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} | "
        f"{'non-200':>7} | {'errors':>6} | {'req/s of every round':<24} | "
        f"{'p99 ms of every round':<24} |"
    )
    print(f"|{'-' * 20}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|{'-' * 26}|{'-' * 26}|")
    for server in servers:
        result = server.median
        non_200 = sum(n for r in server.rounds for code, n in r.statuses.items() if code != "200")
        errors = sum(r.errors for r in server.rounds)
        every = " ".join(f"{r.rps:.0f}" for r in server.rounds)
        p99s = " ".join(f"{r.p99_ms:.1f}" for r in server.rounds)
        print(
            f"| {server.name:<18} | {result.rps:>9.0f} | {result.p50_ms:>7.2f} | "
            f"{result.p99_ms:>7.2f} | {non_200:>7} | {errors:>6} | {every:<24} | {p99s:<24} |"
        )
    print(
        f"\nCPU per request in that round, µs (of {cpus} CPUs), machine idle, and the share "
        "of the round the server ran and waited for a CPU:\n"
    )
    columns = ("server", "Redis", "AOF rewrite", "wrk", "total")
    print(
        f"| {'server':<18} | "
        + " | ".join(f"{c:>7}" for c in columns)
        + f" | {'idle':>5} | {'ran':>5} | {'waited':>6} |"
    )
    print(
        f"|{'-' * 20}|"
        + "|".join("-" * (max(7, len(c)) + 2) for c in columns)
        + f"|{'-' * 7}|{'-' * 7}|{'-' * 8}|"
    )
    for server in servers:
        result = server.median
        assert result.cpu is not None
        per = {k: v / result.requests * 1e6 for k, v in result.cpu.items()}
        idle = 1 - sum(result.cpu.values()) / (cpus * result.seconds)
        ran, waited = (
            (f"{result.sched[0] / result.seconds:.0%}", f"{result.sched[1] / result.seconds:.0%}")
            if result.sched
            else ("n/a", "n/a")
        )
        print(
            f"| {server.name:<18} | {per['server']:>7.1f} | {per['Redis']:>7.1f} | "
            f"{per['AOF rewrite']:>11.1f} | {per['wrk']:>7.1f} | {sum(per.values()):>7.1f} | "
            f"{idle:>5.0%} | {ran:>5} | {waited:>6} |"
        )
    if len(servers) > 2:
        replicated = servers[2]
        print(
            f"\nMIN_REPLICAS=1 / hookbird throughput (medians): "
            f"{replicated.median.rps / hookbird.median.rps:.3f}; its p50 "
            f"{replicated.median.p50_ms:.2f} ms against {hookbird.median.p50_ms:.2f} ms, "
            f"p99 {replicated.median.p99_ms:.2f} ms against {hookbird.median.p99_ms:.2f} ms"
        )
    ratio = hookbird.median.rps / bare.median.rps
    worst_p99 = max(r.p99_ms for r in hookbird.rounds)
    print(f"\nhookbird / bare throughput (medians): {ratio:.3f}   (target >= 0.50)")
    print(f"hookbird p99, worst round: {worst_p99:.2f} ms   (target <= 20 ms)")
    total = sum(audits[1:], audits[0])
    backed = all(a.backed for a in audits)
    print(
        f"200s (warm-up + rounds): {total.oks}; ids on the queue: {total.queued}; "
        f"rq:job hashes: {total.jobs}; stored pushes: {total.events}"
        + ("" if args.keep_data else f" (counted after each of {len(audits)} runs)")
        + f"; receiver log lines: {log_lines}"
    )
    print("every 200 backed by a job: " + ("yes" if backed else "NO"))
    ok = ratio >= 0.50 and worst_p99 <= 20 and backed
    print("targets met" if ok else "TARGETS NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
