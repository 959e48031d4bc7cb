"""Workers ride out a Redis outage up to HOOKBIRD_REDIS_OUTAGE_GRACE, and exit past it.

Each test runs its own ``redis-server`` (AOF on, as in production) that it kills with
``kill -9`` and starts again on the same port, and real ``hookbird worker`` processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus

from hookbird import keys
from hookbird.outage import Outage, ride_out
from hookbird.redis_server import RedisServer
from hookbird.settings import Settings
from receiver.app import create_app
from tests.support import serve_in_thread
from tests.workers.conftest import TOKEN, Pusher, Workers, calls, wait_for
from workers import recovery
from workers.states import BeginVerdict
from workers.store import Store
from workers.worker import HookbirdSimpleWorker

pytestmark = pytest.mark.slow

#: Long enough to outlast redis-py's own three retries of a command, every time.
OUTAGE = 12.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, free to be killed."""
    with RedisServer(tmp_path / "redis") as srv:
        yield srv


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(server.url, socket_timeout=5)
    yield conn
    conn.close()


@pytest.fixture
def pusher(server: RedisServer) -> Iterator[Pusher]:
    settings = Settings(redis_url=server.url, webhook_token=TOKEN)
    with serve_in_thread(create_app(settings)) as base:
        sender = Pusher(base)
        yield sender
        sender.http.close()


@pytest.fixture
def group(server: RedisServer, tmp_path: Path) -> Iterator[Workers]:
    logs = tmp_path / "logs"
    logs.mkdir()
    workers = Workers(server.url, logs)
    yield workers
    workers.stop_all()


def lines(text: str) -> list[dict[str, Any]]:
    out = []
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


def outage_lines_paired(group: Workers) -> bool:
    """At least one "Redis unreachable", and as many "Redis reachable again"."""
    events = [r.get("event") for r in lines(group.output())]
    began = events.count("Redis unreachable")
    return began >= 1 and began == events.count("Redis reachable again")


def started(client: redis.Redis) -> list[str]:
    try:
        return [json.loads(raw)["event_id"] for raw in client.lrange("test:started", 0, -1)]
    except redis.ConnectionError:
        return []


def outage(server: RedisServer, seconds: float) -> None:
    """``kill -9`` the server, keep it down ``seconds``, start it again on the same port."""
    server.kill()
    time.sleep(seconds)
    server.start()


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_worker_rides_out_redis_restarting_mid_push(
    server: RedisServer,
    client: redis.Redis,
    pusher: Pusher,
    group: Workers,
    worker_class: str,
) -> None:
    """Redis killed mid-handler and back after OUTAGE s: the push finishes, the worker lives."""
    client.set("test:sleep:crm", "1")
    proc = group.start("--class", worker_class, HOOKBIRD_REDIS_OUTAGE_GRACE="60")
    event_id = pusher()
    wait_for(lambda: event_id in started(client), message="the handler to start")
    outage(server, OUTAGE)
    done = wait_for(lambda: calls(client), timeout=60, message="the push to be handled")
    assert [c["event_id"] for c in done] == [event_id]
    later = pusher()  # and it goes on taking pushes
    wait_for(lambda: len(calls(client)) == 2, timeout=30, message="a push after the outage")
    assert calls(client)[1]["event_id"] == later
    assert proc.poll() is None, group.output()
    # one pair per process that saw it (the scheduler, a fork worker's child: each its own);
    # a process says the outage ended at its next command, up to a second after the rest
    wait_for(lambda: outage_lines_paired(group), message="each outage's end to be logged")
    records = lines(group.output())
    began = [r for r in records if r.get("event") == "Redis unreachable"]
    ended = [r for r in records if r.get("event") == "Redis reachable again"]
    assert len({r["pid"] for r in began}) == len(began), group.output()
    assert all(r["seconds"] >= OUTAGE / 2 for r in ended), ended


def test_a_worker_rides_out_redis_restarting_while_idle(
    server: RedisServer, client: redis.Redis, pusher: Pusher, group: Workers
) -> None:
    """Killed while the worker waits on the queue: quiet until Redis is back, then it goes on."""
    proc = group.start(HOOKBIRD_REDIS_OUTAGE_GRACE="60")
    first = pusher()
    wait_for(lambda: calls(client), message="the first push")
    outage(server, OUTAGE)
    second = pusher()
    wait_for(lambda: len(calls(client)) == 2, timeout=60, message="a push after the outage")
    assert [c["event_id"] for c in calls(client)] == [first, second]
    assert proc.poll() is None, group.output()
    # one line when it began, one when it ended: nothing every second in between
    noisy = ("liveness beat failed", "command channel lost")
    wait_for(lambda: outage_lines_paired(group), message="each outage's end to be logged")
    events = [str(r.get("event")) for r in lines(group.output())]
    assert not [e for e in events if e in noisy or "could not connect" in e], events


def test_a_retry_scheduled_before_an_outage_runs_after_it(
    server: RedisServer, client: redis.Redis, pusher: Pusher, group: Workers
) -> None:
    """A handler failed and its retry waits in the scheduler when Redis dies: it still runs."""
    client.set("test:fail:crm", "1")
    proc = group.start(HOOKBIRD_REDIS_OUTAGE_GRACE="60")
    event_id = pusher()
    wait_for(
        lambda: client.hget(f"rq:job:{event_id}", "status") == b"scheduled",
        message="the retry to be scheduled",
    )
    outage(server, OUTAGE)
    done = wait_for(lambda: calls(client), timeout=60, message="the retry to run")
    assert [(c["event_id"], c["attempt"]) for c in done] == [(event_id, 2)]
    assert proc.poll() is None, group.output()


def test_a_worker_asked_to_stop_does_not_wait_out_an_outage(
    server: RedisServer, client: redis.Redis, pusher: Pusher, group: Workers
) -> None:
    """SIGTERM while Redis is down (it may be stopping too): exit 0 now, not after the grace."""
    proc = group.start(HOOKBIRD_REDIS_OUTAGE_GRACE="120")
    pusher()
    wait_for(lambda: calls(client), message="the first push")
    server.kill()
    wait_for(lambda: "Redis unreachable" in group.output(), message="the outage to be seen")
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("the stopping worker waited for Redis:\n" + group.output())
    assert code == 0, group.output()
    assert "stopped without waiting for Redis" in group.output()


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_the_scheduler_of_a_killed_worker_goes_with_it(
    server: RedisServer, client: redis.Redis, group: Workers
) -> None:
    """kill -9 of a worker: its RQ scheduler does not live on, riding out outages alone."""
    proc = group.start(HOOKBIRD_REDIS_OUTAGE_GRACE="60")
    scheduler = wait_for(lambda: children_of(proc.pid), message="the scheduler process")[0]
    proc.kill()
    proc.wait()
    try:
        wait_for(lambda: gone(scheduler), timeout=30, message="the orphaned scheduler to exit")
    finally:
        if not gone(scheduler):
            os.kill(scheduler, signal.SIGKILL)


def test_a_worker_exits_with_one_line_past_the_grace(
    server: RedisServer, client: redis.Redis, pusher: Pusher, group: Workers
) -> None:
    """Redis gone for longer than the grace: exit non-zero, saying so once, for the supervisor."""
    proc = group.start(HOOKBIRD_REDIS_OUTAGE_GRACE="3")
    pusher()
    wait_for(lambda: calls(client), message="the first push")
    server.kill()
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker kept waiting for Redis past its grace:\n" + group.output())
    assert code == 3, group.output()
    records = lines(group.output())
    gave_up = [
        r for r in records if r.get("event") == "Redis unreachable for longer than the grace"
    ]
    assert len(gave_up) == 1, group.output()
    assert "HOOKBIRD_REDIS_OUTAGE_GRACE" in gave_up[0]["hint"]
    output = group.output()
    assert "Traceback" not in output, output[output.find("Traceback") - 1500 :]


def test_the_reaper_holds_off_for_one_liveness_period_after_an_outage(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Every liveness key may have expired while Redis was down: no rescue until all beat."""
    now = [1000.0]
    outage = Outage(60, "test", clock=lambda: now[0])
    conn = ride_out(redis.Redis.from_url(redis_url), outage)
    queue = Queue("hookbird", connection=conn)
    job = queue.enqueue("workers.jobs.process_event", job_id="ev-running")
    conn.lrem(queue.key, 1, "ev-running")
    job.set_status(JobStatus.STARTED)
    conn.hset(job.key, "worker_name", "w-still-running")
    conn.zadd(queue.started_job_registry.key, {"ev-running:exec1": 9999999999})
    conn.sadd(recovery.WORKERS, "w-still-running")  # its liveness key expired meanwhile
    worker = HookbirdSimpleWorker([queue], connection=conn, settings=Settings(worker_liveness=2))
    outage.failed(redis.ConnectionError("Redis restarting"))
    now[0] += 12
    outage.reached()
    try:
        worker.clean_registries()
        assert queue.get_job_ids() == []
        assert Job.fetch("ev-running", connection=conn).get_status() == "started"
        now[0] += 2  # every live worker has beaten by now: this one has not
        worker.clean_registries()
        assert queue.get_job_ids() == ["ev-running"]
    finally:
        conn.close()


def test_a_worker_holds_off_the_reaper_for_one_liveness_period_after_it_starts(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A worker started as Redis comes back did not see the outage: it waits like the others.

    The chaos run without a supervisor: a worker killed during an outage was started
    again, waited for Redis, and its first reap ran again the pushes of live workers
    whose liveness keys had expired while Redis was down, before they could beat.
    """
    now = [1000.0]
    outage = Outage(60, "test", clock=lambda: now[0])
    conn = ride_out(redis.Redis.from_url(redis_url), outage)
    queue = Queue("hookbird", connection=conn)
    job = queue.enqueue("workers.jobs.process_event", job_id="ev-running")
    conn.lrem(queue.key, 1, "ev-running")
    job.set_status(JobStatus.STARTED)
    conn.hset(job.key, "worker_name", "w-still-running")
    conn.zadd(queue.started_job_registry.key, {"ev-running:exec1": 9999999999})
    conn.sadd(recovery.WORKERS, "w-still-running")  # its liveness key expired meanwhile
    worker = HookbirdSimpleWorker([queue], connection=conn, settings=Settings(worker_liveness=2))
    try:
        worker.clean_registries()
        assert queue.get_job_ids() == []
        assert Job.fetch("ev-running", connection=conn).get_status() == "started"
        now[0] += 2  # every live worker has beaten by now: this one has not
        worker.clean_registries()
        assert queue.get_job_ids() == ["ev-running"]
    finally:
        conn.close()


def test_begin_sent_again_after_a_lost_reply_keeps_its_turn(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """begin.lua ran, its reply was lost with Redis, redis-py sends it again: still GO.

    The second call finds the entity lock it took itself; taking that for another run
    parked the push until the lock expired (the job timeout plus a minute).
    """
    queue = Queue("hookbird", connection=redis_client)
    store = Store(
        redis_client,
        wip_key=queue.started_job_registry.key,
        mid_key=queue.intermediate_queue_key,
        scheduled_key=queue.scheduled_job_registry.key,
    )
    redis_client.set(keys.event_key("ev-1"), b'{"received_at": "1"}\n{}')
    entity = ("123", "Contact", "456")
    first = store.begin("ev-1", "ev-1:aaaa", 60.0, entity, 3600)
    again = store.begin("ev-1", "ev-1:aaaa", 60.0, entity, 3600)
    other_run = store.begin("ev-1", "ev-1:bbbb", 60.0, entity, 3600)
    assert first.verdict == BeginVerdict.GO
    assert again.verdict == BeginVerdict.GO
    assert other_run.verdict == BeginVerdict.WAIT  # a second copy of the job still waits
