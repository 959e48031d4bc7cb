"""Chaos run: pushes keep arriving while Redis, receivers and workers are killed with -9.

Starts a Redis configured by ``deploy/redis.conf`` (AOF ``everysec``), two receivers
(``hookbird serve``), three workers (``hookbird worker``) and the recording handlers of
``bench/chaos_handlers.py``, whose runs are counted per (event, handler) in a second
Redis that is never killed. Senders that behave like Moneybird (``bench/chaos_senders.py``)
deliver N unique signed pushes plus 20 % exact duplicates, retrying anything but a 200
with growing gaps, up to 10 times. Meanwhile, at random moments, Redis is killed and
restarted on the same data, workers are killed and replaced, receivers are killed and
restarted (``bench/chaos_cluster.py``). Then it waits for the queue to drain and prints
what was sent, answered and handled, and whether any credential shows up in the logs.

Targets: 0 lost (answered 200, never handled), every push answered 200 in the end,
at most one "handled twice" per worker death (killed, or quit because Redis died
under it). Exit status 1 when a push was lost or a credential was found in a log.

``--no-supervisor``: nothing restarts a process that exits on its own; only what the run
kills itself comes back. Every process must ride out the Redis kills
(``HOOKBIRD_REDIS_OUTAGE_GRACE``): one that exits is reported, stays dead, and the run
misses its targets.

    .venv/bin/python bench/chaos.py                       # 5,000 pushes at 250/s
    .venv/bin/python bench/chaos.py --pushes 20000 --rate 400 --redis-kills 5
    .venv/bin/python bench/chaos.py --appendfsync always   # the setting that closes the window
    .venv/bin/python bench/chaos.py --failovers 2 --redis-kills 0   # Sentinel failover mode
    .venv/bin/python bench/chaos.py --no-supervisor --redis-down-min 5 --redis-down 15
    .venv/bin/python bench/chaos.py --no-supervisor --failovers 2    # failovers, nothing restarted

``--failovers N`` runs Redis as a primary, a replica and three Sentinels
(``hookbird.sentinel_cluster``), every process on the ``redis+sentinel://`` URL with
``HOOKBIRD_MIN_REPLICAS=1``, and N times kills the primary with -9, leaving it down
2-5 s (the Sentinels promote the replica) before starting it again to rejoin as a
replica. With ``--no-supervisor`` that restart is the only one: receivers and workers
ride out each election on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chaos_cluster import Cluster  # noqa: E402
from bench.chaos_handlers import HANDLERS, KEY_CHANGED, RUNS  # noqa: E402
from bench.chaos_senders import Push, Sender, make_pushes, schedule  # noqa: E402
from hookbird import keys  # noqa: E402
from hookbird.redis_url import sync_client  # noqa: E402


@dataclass
class Config:
    pushes: int = 5000
    duplicates: float = 0.20
    rate: float = 250.0
    redis_kills: int = 3
    worker_kills: int = 6
    receiver_kills: int = 3
    workers: int = 3
    liveness: float = 3.0
    drain_timeout: float = 180.0
    logs: Path | None = None
    seed: int | None = None
    #: None: deploy/redis.conf's own (everysec)
    appendfsync: str | None = None
    #: >0: Sentinel mode, the primary killed this many times
    failovers: int = 0
    #: False: processes that exit on their own stay dead (only killed ones come back).
    supervisor: bool = True
    #: How long Redis stays down after a kill (seconds, drawn between the two).
    redis_down_min: float = 0.2
    redis_down: float = 2.0
    #: Seconds each recording handler sleeps: longer keeps workers mid-push at a kill.
    handler_sleep: float = 0.002


@dataclass
class Report:
    sent: int = 0
    unique: int = 0
    duplicates: int = 0
    attempts: int = 0
    answered_200: int = 0
    non_200_answers: int = 0
    gave_up: int = 0
    handled: int = 0
    lost: list[str] = field(default_factory=list)
    #: Lost pushes found in RQ's intermediate queue (taken off the queue, never started).
    lost_in_intermediate: int = 0
    handled_twice: int = 0
    duplicates_refused: int = 0
    accepted_twice: int = 0
    key_changed: int = 0
    dead_lettered: int = 0
    worker_kills: int = 0
    redis_kills: int = 0
    receiver_kills: int = 0
    exited: int = 0
    failovers: int = 0
    exits: list[str] = field(default_factory=list)
    supervisor: bool = True
    send_seconds: float = 0.0
    drain_seconds: float = 0.0
    drained: bool = False
    leaks: dict[str, bool] = field(default_factory=dict)
    logs: Path | None = None
    appendfsync: str = ""

    @property
    def ok(self) -> bool:
        return not self.lost and not any(self.leaks.values())

    @property
    def targets_met(self) -> bool:
        return (
            self.ok
            and self.drained
            and self.gave_up == 0
            and self.answered_200 == self.sent
            and self.handled_twice <= self.worker_deaths
            and (self.supervisor or self.exited == 0)
        )

    @property
    def worker_deaths(self) -> int:
        """Workers killed, plus processes that quit (workers do when Redis dies mid-push).

        Each death can leave at most one (push, handler) run with its outcome unrecorded.
        """
        return self.worker_kills + self.exited


def chaos_plan(config: Config, seconds: float) -> list[tuple[float, str]]:
    """Random moments within the sending time, one per kill asked for."""
    kinds = (
        ["redis"] * config.redis_kills
        + ["worker"] * config.worker_kills
        + ["receiver"] * config.receiver_kills
        + ["primary"] * config.failovers
    )
    return sorted((random.uniform(0.1, 0.9) * seconds, kind) for kind in kinds)


class Monkey(threading.Thread):
    """Carries out the chaos plan, and restarts whatever exits on its own until stopped."""

    def __init__(
        self,
        cluster: Cluster,
        plan: list[tuple[float, str]],
        *,
        supervisor: bool = True,
        redis_down: tuple[float, float] = (0.2, 2.0),
    ) -> None:
        super().__init__(name="chaos-monkey", daemon=True)
        self.cluster = cluster
        self.plan = plan
        self.supervisor = supervisor
        self.redis_down = redis_down
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        actions: dict[str, Callable[[], None]] = {
            "redis": lambda: self.cluster.kill_redis(down=random.uniform(*self.redis_down)),
            "worker": self.cluster.kill_worker,
            "receiver": self.cluster.kill_receiver,
            "primary": lambda: self.cluster.kill_primary(down=random.uniform(2.0, 5.0)),
        }
        started = time.monotonic()
        pending = list(self.plan)
        try:
            while not self.done.is_set():
                if pending and time.monotonic() - started >= pending[0][0]:
                    actions[pending.pop(0)[1]]()
                if self.supervisor:
                    self.cluster.restart_exited()
                else:
                    self.cluster.note_exited()
                self.done.wait(0.05)
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def pending_work(client: redis.Redis, queue: str = "hookbird") -> int:
    """Jobs queued, running, scheduled or in RQ's intermediate queue."""
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(keys.rq_queue_key(queue))
        pipe.zcard(f"rq:wip:{queue}")
        pipe.zcard(f"rq:scheduled:{queue}")
        pipe.llen(f"rq:queue:{queue}:intermediate")
        return sum(int(n) for n in pipe.execute())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def runs_by_handler(counts: redis.Redis) -> dict[str, dict[str, int]]:
    return {
        name: {_text(k): int(v) for k, v in counts.hgetall(RUNS + name).items()}
        for name in HANDLERS
    }


def drain(cluster: Cluster, acked: set[str], timeout: float) -> tuple[float, bool]:
    """Wait until every acknowledged push is handled, or no handler has run for a while.

    "A while" outlasts the rescue of a killed worker's push (its liveness key expiring).
    """
    started = time.monotonic()
    stall = 3 * cluster.liveness + 10
    client = sync_client(cluster.redis_url, socket_timeout=5)
    counts = redis.Redis.from_url(cluster.counts.url)
    progress, progress_at = -1, started
    try:
        while time.monotonic() - started < timeout:
            runs = runs_by_handler(counts)
            handled = all(event in runs[name] for event in acked for name in HANDLERS)
            if handled and pending_work(client) == 0:
                return time.monotonic() - started, True
            total = sum(sum(r.values()) for r in runs.values())
            if total != progress:
                progress, progress_at = total, time.monotonic()
            elif time.monotonic() - progress_at > stall:
                break
            time.sleep(0.2)
        return time.monotonic() - started, False
    finally:
        client.close()
        counts.close()


def tally(pushes: list[Push], cluster: Cluster, report: Report) -> None:
    counts = redis.Redis.from_url(cluster.counts.url)
    client = sync_client(cluster.redis_url)
    try:
        runs = runs_by_handler(counts)
        report.key_changed = int(counts.get(KEY_CHANGED) or 0)
        report.dead_lettered = int(client.zcard("rq:failed:hookbird"))
        stranded = {_text(raw) for raw in client.lrange("rq:queue:hookbird:intermediate", 0, -1)}
    finally:
        counts.close()
        client.close()
    report.sent = len(pushes)
    report.duplicates = sum(1 for p in pushes if p.duplicate_of is not None)
    report.unique = report.sent - report.duplicates
    report.attempts = sum(p.attempts for p in pushes)
    report.answered_200 = sum(1 for p in pushes if p.answered)
    report.non_200_answers = sum(p.non_200 for p in pushes)
    report.gave_up = sum(1 for p in pushes if not p.answered)
    ids_per_key: dict[str, set[str]] = {}
    for push in pushes:
        if push.event_id:
            ids_per_key.setdefault(push.key, set()).add(push.event_id)
    # A copy is refused when it was answered with its original's event id (whichever of
    # the two the receiver saw first).
    originals = {p.number: p for p in pushes if p.duplicate_of is None}
    report.duplicates_refused = sum(
        1
        for p in pushes
        if p.duplicate_of is not None
        and p.event_id is not None
        and p.event_id == originals[p.duplicate_of].event_id
    )
    report.accepted_twice = sum(len(ids) - 1 for ids in ids_per_key.values())
    acked = {p.event_id for p in pushes if p.event_id}
    report.handled = sum(1 for e in acked if all(e in runs[name] for name in HANDLERS))
    report.lost = sorted(e for e in acked if not all(e in runs[name] for name in HANDLERS))
    report.lost_in_intermediate = len(stranded.intersection(report.lost))
    report.handled_twice = sum(1 for name in HANDLERS for n in runs[name].values() if n > 1)
    report.worker_kills = cluster.kills.workers
    report.redis_kills = cluster.kills.redis
    report.receiver_kills = cluster.kills.receivers
    report.exited = cluster.kills.exited
    report.failovers = cluster.kills.failovers
    report.exits = list(cluster.kills.exits)


HEX64 = re.compile(rb"[0-9a-f]{64}")


def scan_logs(logs: Path, secrets: dict[str, str], signatures: set[str]) -> dict[str, bool]:
    """Is any credential, or any signature sent, anywhere in the run's log files?"""
    found = dict.fromkeys([*secrets, "Moneybird-Signature v1"], False)
    for path in logs.glob("*.log"):
        data = path.read_bytes()
        for name, value in secrets.items():
            # The Authorization value is checked whole and without its "Bearer " scheme.
            needles = {value, value.removeprefix("Bearer ")}
            found[name] = found[name] or any(n.encode() in data for n in needles)
        if any(m.decode() in signatures for m in HEX64.findall(data)):
            found["Moneybird-Signature v1"] = True
    return found


def run(config: Config) -> Report:
    """One chaos run; the processes' logs stay in ``config.logs`` (a new temp dir if None)."""
    if config.seed is not None:
        random.seed(config.seed)
    logs = config.logs or Path(tempfile.mkdtemp(prefix="hookbird-chaos-"))
    cluster = Cluster(
        logs,
        workers=config.workers,
        liveness=config.liveness,
        appendfsync=config.appendfsync,
        sentinel=config.failovers > 0,
        handler_sleep=config.handler_sleep,
    )
    report = Report(
        logs=logs,
        appendfsync=config.appendfsync or "everysec (deploy/redis.conf)",
        supervisor=config.supervisor,
    )
    pushes = make_pushes(
        config.pushes, config.duplicates, cluster.secrets.webhook_token, random.randbytes(4).hex()
    )
    plan = schedule(pushes, config.rate)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()  # what did start: a Redis left running would skew the next run
        raise
    monkey = Monkey(
        cluster,
        chaos_plan(config, plan[-1][0]),
        supervisor=config.supervisor,
        redis_down=(config.redis_down_min, config.redis_down),
    )
    try:
        sender = Sender(cluster.urls, cluster.secrets.webhook_secret, cluster.secrets.authorization)
        monkey.start()
        started = time.monotonic()
        asyncio.run(sender.send_all(plan))
        report.send_seconds = time.monotonic() - started
        acked = {p.event_id for p in pushes if p.event_id}
        report.drain_seconds, report.drained = drain(cluster, acked, config.drain_timeout)
        monkey.done.set()
        monkey.join()
        if monkey.error is not None:
            raise monkey.error
        if not config.supervisor:
            cluster.note_exited()  # one that died while the queue drained
        tally(pushes, cluster, report)
    finally:
        monkey.done.set()
        cluster.stop()
    signatures = {s for p in pushes for s in p.signatures}
    report.leaks = scan_logs(logs, cluster.secrets.named(), signatures)
    return report


def table(report: Report) -> str:
    rows = [
        (
            "pushes sent (unique + exact duplicates)",
            f"{report.sent} ({report.unique} + {report.duplicates})",
        ),
        ("HTTP attempts", report.attempts),
        ("answered 200", report.answered_200),
        ("non-200 answers or connection errors (retried)", report.non_200_answers),
        ("answered non-200 and given up", report.gave_up),
        ("handled (every handler ran)", report.handled),
        ("LOST (answered 200, never handled)", len(report.lost)),
        ("  of which stranded in RQ's intermediate queue", report.lost_in_intermediate),
        ("handled twice (event, handler)", report.handled_twice),
        ("  allowed: one per worker killed or quit", report.worker_deaths),
        ("idempotency key changed between runs", report.key_changed),
        (
            "duplicates refused (answered the first event id)",
            f"{report.duplicates_refused} of {report.duplicates}",
        ),
        ("same Idempotency-Key accepted twice", report.accepted_twice),
        ("dead-lettered", report.dead_lettered),
        ("worker kills", report.worker_kills),
        ("Redis kills", report.redis_kills),
        ("receiver kills", report.receiver_kills),
        ("primary kills (Sentinel failovers)", report.failovers),
        (
            "processes that quit on their own "
            + ("(restarted)" if report.supervisor else "(NOT restarted: no supervisor)"),
            report.exited,
        ),
        ("time to send", f"{report.send_seconds:.1f} s"),
        (
            "time to drain",
            f"{report.drain_seconds:.1f} s" + ("" if report.drained else " (not drained)"),
        ),
    ]
    rows.insert(0, ("Redis appendfsync", report.appendfsync))
    rows.insert(1, ("supervisor", "restarts what quits" if report.supervisor else "none"))
    rows += [
        (f"{name} in logs", "FOUND" if found else "not found")
        for name, found in report.leaks.items()
    ]
    width = max(len(name) for name, _ in rows)
    values = max(len(str(value)) for _, value in rows)
    lines = [
        f"| {'chaos run':<{width}} | {'':>{values}} |",
        f"|{'-' * (width + 2)}|{'-' * (values + 2)}|",
    ]
    lines += [f"| {name:<{width}} | {value!s:>{values}} |" for name, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    defaults = Config()
    parser.add_argument("--pushes", type=int, default=defaults.pushes, help="unique pushes (5000)")
    parser.add_argument(
        "--duplicates",
        type=float,
        default=defaults.duplicates,
        help="share of exact duplicates (0.20)",
    )
    parser.add_argument(
        "--rate", type=float, default=defaults.rate, help="unique pushes a second (250)"
    )
    parser.add_argument(
        "--redis-kills", type=int, help=f"({defaults.redis_kills}; 0 with --failovers)"
    )
    parser.add_argument("--worker-kills", type=int, default=defaults.worker_kills)
    parser.add_argument("--receiver-kills", type=int, default=defaults.receiver_kills)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument(
        "--failovers",
        type=int,
        default=defaults.failovers,
        help="Sentinel mode: kill -9 the primary this many times (0: one plain Redis)",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        help="directory for the processes' logs and Redis's data, new or empty (a new temp dir)",
    )
    parser.add_argument("--seed", type=int, help="random seed, to replay a run's plan")
    parser.add_argument(
        "--no-supervisor",
        dest="supervisor",
        action="store_false",
        help="leave dead a process that exits on its own (only killed ones come back)",
    )
    parser.add_argument(
        "--redis-down",
        type=float,
        default=defaults.redis_down,
        help="longest time Redis stays down after a kill, seconds (2)",
    )
    parser.add_argument(
        "--handler-sleep",
        type=float,
        default=defaults.handler_sleep,
        help="seconds each handler sleeps (0.002); longer keeps workers busy at a kill",
    )
    parser.add_argument(
        "--redis-down-min",
        type=float,
        default=defaults.redis_down_min,
        help="shortest time Redis stays down after a kill, seconds (0.2)",
    )
    parser.add_argument(
        "--appendfsync",
        choices=("everysec", "always"),
        help="override deploy/redis.conf's appendfsync (everysec)",
    )
    args = parser.parse_args(argv)
    if args.redis_kills is None:
        args.redis_kills = 0 if args.failovers else defaults.redis_kills
    if args.failovers and args.redis_kills:
        parser.error("--redis-kills and --failovers: the primary is what --failovers kills")
    if args.logs is not None and args.logs.exists() and any(args.logs.iterdir()):
        # a Sentinel would start from the configuration an earlier run left there
        parser.error(f"--logs {args.logs}: holds an earlier run; give a new or empty directory")
    config = Config(
        pushes=args.pushes,
        duplicates=args.duplicates,
        rate=args.rate,
        redis_kills=args.redis_kills,
        worker_kills=args.worker_kills,
        receiver_kills=args.receiver_kills,
        workers=args.workers,
        logs=args.logs,
        seed=args.seed,
        appendfsync=args.appendfsync,
        failovers=args.failovers,
        supervisor=args.supervisor,
        redis_down=args.redis_down,
        redis_down_min=args.redis_down_min,
        handler_sleep=args.handler_sleep,
    )
    report = run(config)
    print(table(report))
    print(f"\nlogs: {report.logs}")
    if report.lost:
        print(f"LOST event ids: {' '.join(report.lost[:50])}")
    if report.exits:
        print(f"quit on their own: {', '.join(report.exits)}")
    print("targets met" if report.targets_met else "TARGETS NOT MET")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
