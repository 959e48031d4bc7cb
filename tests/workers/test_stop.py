"""A stopping worker exits within its shutdown grace, every time, for both worker classes.

Each worker here runs under :mod:`tests.workers.late_unsubscribe`, which makes RQ's
command-channel pubsub thread read the UNSUBSCRIBE reply before the main thread goes
on to stop it: the order in which redis-py's ``PubSubWorkerThread.stop()`` used to wait
out the thread's 60-second poll. Times are measured from the signal to the exit.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from rq import Worker
from rq.command import send_shutdown_command

from tests.workers.conftest import ROOT, Pusher, wait_for, worker_env

pytestmark = pytest.mark.slow

LATE = (sys.executable, "-c", "import tests.workers.late_unsubscribe as m; m.main()")
MID_COMMAND = (sys.executable, "-c", "import tests.workers.stop_mid_command as m; m.main()")
GRACE = 4.0


@contextmanager
def running(
    redis_url: str, log: Path, *args: str, program: tuple[str, ...] = LATE
) -> Iterator[subprocess.Popen[bytes]]:
    """``hookbird worker ARGS`` run by ``program``, its output in ``log``; killed at the
    end if the test left it running."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*program, "worker", *args],
            cwd=ROOT,
            env=worker_env(redis_url, HOOKBIRD_SHUTDOWN_GRACE=f"{GRACE:g}"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def seconds_to_exit(proc: subprocess.Popen[bytes], how: signal.Signals, log: Path) -> float:
    began = time.monotonic()
    proc.send_signal(how)
    try:
        code = proc.wait(90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"still running 90 s later:\n{log.read_text()[-3000:]}") from None
    assert code == 0, log.read_text()[-3000:]
    return time.monotonic() - began


def idle_and_subscribed(client: redis.Redis) -> str | None:
    """The channel of the test's worker once it waits for pushes and listens for commands."""
    workers = Worker.all(connection=client)
    if len(workers) != 1 or workers[0].get_state() != "idle":
        return None
    channel = workers[0].pubsub_channel_name
    return channel if client.pubsub_numsub(channel)[0][1] else None


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_an_idle_worker_stops_within_its_grace(
    redis_url: str,
    redis_client: redis.Redis,
    tmp_path: Path,
    worker_class: str,
    how: signal.Signals,
) -> None:
    """SIGTERM or Ctrl-C to a waiting worker: it exits, cleanly, well before its grace is over."""
    log = tmp_path / "worker.log"
    with running(redis_url, log, "--class", worker_class) as proc:
        channel = wait_for(
            lambda: idle_and_subscribed(redis_client), message="the worker to wait for pushes"
        )
        assert seconds_to_exit(proc, how, log) < GRACE
    assert redis_client.pubsub_numsub(channel)[0][1] == 0  # no process kept its connection


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_busy_worker_stops_when_its_grace_is_over(
    push: Pusher, redis_url: str, redis_client: redis.Redis, tmp_path: Path, worker_class: str
) -> None:
    """A handler that outlives the grace is cut off at its end, and the worker exits right after."""
    redis_client.set("test:sleep:crm", 60)
    log = tmp_path / "worker.log"
    with running(redis_url, log, "--class", worker_class) as proc:
        push()
        wait_for(lambda: redis_client.llen("test:started"), message="the handler to start")
        assert seconds_to_exit(proc, signal.SIGTERM, log) < GRACE + 3
    assert redis_client.llen("rq:queue:hookbird") == 1  # the push went back


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_burst_on_an_empty_queue_returns_at_once(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, worker_class: str
) -> None:
    """`hookbird worker --burst` with nothing queued starts, finds nothing, and exits."""
    log = tmp_path / "worker.log"
    began = time.monotonic()
    with running(redis_url, log, "--burst", "--class", worker_class) as proc:
        assert proc.wait(90) == 0, log.read_text()[-3000:]
    assert time.monotonic() - began < GRACE, log.read_text()[-3000:]


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_rq_commands_still_reach_the_worker(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, worker_class: str
) -> None:
    """RQ's shutdown command, read by hookbird's command thread, stops the worker in time."""
    log = tmp_path / "worker.log"
    with running(redis_url, log, "--class", worker_class) as proc:
        channel = wait_for(
            lambda: idle_and_subscribed(redis_client), message="the worker to wait for pushes"
        )
        began = time.monotonic()
        send_shutdown_command(redis_client, channel.removeprefix("rq:pubsub:"))
        assert proc.wait(90) == 0, log.read_text()[-3000:]
        assert time.monotonic() - began < GRACE


@pytest.mark.parametrize("worker_class", ["simple", "fork"])
def test_a_stop_between_a_command_and_its_reply_does_not_wait_for_the_reply(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, worker_class: str
) -> None:
    """SIGTERM right after the worker sent BLPOP: its teardown does not queue behind it."""
    log = tmp_path / "worker.log"
    began = time.monotonic()
    with running(redis_url, log, "--class", worker_class, program=MID_COMMAND) as proc:
        assert proc.wait(90) == 0, log.read_text()[-3000:]
    assert "warm shut down requested" in log.read_text()
    assert time.monotonic() - began < GRACE + 3
