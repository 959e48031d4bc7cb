"""The hookbird worker: an RQ worker with a shutdown grace period and a liveness beat.

Two classes, chosen with ``HOOKBIRD_WORKER_CLASS``:

- ``simple`` (default, RQ's ``SimpleWorker``): runs pushes in the worker process.
  The Moneybird client's connection pool and rate-budget view live as long as the
  process, and there is no fork per push: several times the throughput. A handler
  that crashes the interpreter takes the worker down; the process manager restarts
  it and :mod:`workers.recovery` runs the push again.
- ``fork`` (RQ's ``Worker``): a child process per push, so a handler that leaks
  memory or segfaults cannot hurt the worker. Costs a fork and a new client (new
  connections) per push.

Stopping (SIGTERM or Ctrl-C): RQ's warm shutdown lets the current push finish. After
``HOOKBIRD_SHUTDOWN_GRACE`` seconds the running handler is interrupted (SIGUSR1 to
the process running it) and the push goes back to the front of the queue, with no
attempt used up. A second signal stops at once, also requeueing the push.

A daemon thread refreshes this worker's liveness key and, on every beat, looks for
pushes whose worker died (see :mod:`workers.recovery`) and starts the webhook watchdog
and the scheduled reconciliation if no worker has (:mod:`workers.watchdog`,
:mod:`workers.reconcile_schedule`).

Redis outages: the connection ``hookbird worker`` gives the worker retries every command
for up to ``HOOKBIRD_REDIS_OUTAGE_GRACE`` seconds (:mod:`hookbird.outage`), so RQ and the
handlers only see a slow Redis. Two things are left to the worker class. After an outage
every liveness key may have expired (Redis keeps absolute expiry times), so the reaper
holds off for one liveness period after Redis is back, until every live worker has beaten
again; else it would run again the pushes of workers that are still running them. A worker
holds off for one liveness period after it starts, too: it cannot know whether an outage
just ended, and one started by a process manager during an outage (``hookbird worker``
waits for Redis before it starts) comes up the moment Redis is back, ahead of every live
worker's beat. Past the grace the worker stops the way a stop request does, without
touching Redis on the way out, and ``hookbird worker`` exits with :data:`EXIT_REDIS_GONE`:
its push stays started, and the other workers' recovery runs it again once this worker's
liveness key has expired. A worker asked to stop does not wait out an outage at all.

RQ's command channel (``rq:pubsub:<worker>``: stop-job, kill-horse, shutdown) is read
by a thread of our own rather than RQ's. RQ's thread waits up to 60 s per read, and on
a stop it sends UNSUBSCRIBE and then joins the thread through redis-py's
``PubSubWorkerThread.stop()``; when the thread read the UNSUBSCRIBE reply first, it had
gone back to a 60-second wait, and the worker took a minute to exit. Ours is told to
stop before UNSUBSCRIBE goes out, so that reply is what ends it, and the wait for it is
bounded by :data:`COMMAND_POLL` even when Redis cannot answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, ClassVar

import redis
from rq import SimpleWorker, Worker
from rq.exceptions import StopRequested
from rq.worker import BaseWorker

from hookbird import metrics
from hookbird.children import die_with_parent_hook
from hookbird.logs import get_logger
from hookbird.outage import Outage, RedisGone, outage_of
from hookbird.settings import Settings
from workers import jobs, reconcile_schedule, recovery, running, watchdog
from workers.policy import after_crash
from workers.states import Status
from workers.store import entity_lock_key, entity_set_key, entity_suffix, state_key, wake_key

log = get_logger("hookbird.worker")

GRACE_SIGNAL = signal.SIGUSR1
#: ``hookbird worker``'s exit status when Redis stayed away past HOOKBIRD_REDIS_OUTAGE_GRACE.
EXIT_REDIS_GONE = 3
#: Longest wait of the command-channel thread (seconds): how late it may notice a stop
#: that could not wake it.
COMMAND_POLL = 1.0
#: What :meth:`HookbirdMixin.subscribe` takes from RQ (as of rq 3.0); without it, RQ's own
#: command thread is used, with its slow stop.
_RQ_COMMAND_CHANNEL = all(
    hasattr(BaseWorker, name)
    for name in ("subscribe", "unsubscribe", "handle_payload", "pubsub_channel_name")
)


def _on_grace_signal(signum: int, frame: Any) -> None:
    running.request_interrupt()


class RunAgainLog(logging.Filter):
    """RQ's "Job …: scheduled for retry at …, 999999 remaining", without the count.

    hookbird counts attempts per handler and gives RQ a cap out of reach
    (:data:`workers.jobs.RQ_RETRY_CAP`), so RQ's count means nothing; RQ also says
    "retry" of a push parked behind an earlier one or put back by a shutdown. The line
    keeps only what is true: when the job runs again. hookbird's own lines say why.
    """

    REWRITES: ClassVar[dict[str, str]] = {
        "Job %s: scheduled for retry at %s, %s remaining": "Job %s: scheduled to run again at %s",
        "Job %s: enqueued for retry, %s remaining": "Job %s: queued to run again",
    }

    def filter(self, record: logging.LogRecord) -> bool:
        new = self.REWRITES.get(record.msg) if isinstance(record.msg, str) else None
        if new is not None and isinstance(record.args, tuple):
            record.msg, record.args = new, record.args[: new.count("%s")]
        return True


class GivingUpLog(logging.Filter):
    """Drops RQ's "could not connect to Redis instance: … retrying" when it will not retry.

    RQ's dequeue loop catches every ``ConnectionError``, :class:`RedisGone` included, and
    says it retries; the worker stops instead, and ``hookbird worker`` says why in one line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, RedisGone) for arg in args)


def _rewrite_rq_retry_lines() -> None:
    rq_job = logging.getLogger("rq.job")
    if not any(isinstance(f, RunAgainLog) for f in rq_job.filters):
        rq_job.addFilter(RunAgainLog())
    rq_worker = logging.getLogger("rq.worker")
    if not any(isinstance(f, GivingUpLog) for f in rq_worker.filters):
        rq_worker.addFilter(GivingUpLog())


_dying_with: set[int] = set()


def _children_die_with_this_process() -> None:
    """RQ's scheduler and a fork worker's children get SIGTERM when this worker dies.

    A worker killed outright left its scheduler running: it rode out every later Redis
    outage and lived on, an orphan holding the scheduler lock, until Redis had been gone
    for a whole grace.
    """
    hook, worker = die_with_parent_hook(), os.getpid()
    if hook is None or worker in _dying_with:
        return
    _dying_with.add(worker)

    def after_fork() -> None:  # pragma: no cover - runs in the child
        if os.getppid() == worker:  # not in what a child forks in turn
            hook()

    os.register_at_fork(after_in_child=after_fork)


class HookbirdMixin(BaseWorker):
    """Grace period, liveness beat and recovery, shared by both worker classes."""

    shutdown_grace: float
    liveness: float
    max_attempts: int
    _beat_thread: threading.Thread | None = None
    _beat_stop: threading.Event | None = None
    _grace_timer: threading.Timer | None = None

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        """RQ's constructor, plus the settings to run by (hookbird's defaults without them)."""
        settings = settings if settings is not None else Settings()
        self.shutdown_grace = settings.shutdown_grace
        self.liveness = settings.worker_liveness
        self.max_attempts = settings.max_attempts
        self.hookbird_settings = settings
        super().__init__(*args, **kwargs)
        #: Set when ``connection`` came through :func:`hookbird.outage.ride_out`.
        self.outage: Outage | None = outage_of(self.connection)
        if self.outage is not None:
            self.outage.on_give_up = self._kill_scheduler
            # Started during an outage, or just after one: the other workers' liveness
            # keys may have expired and they may not have beaten again yet.
            self.outage.unseen_until_now()

    @property
    def redis_gone(self) -> bool:
        """Redis stayed away past HOOKBIRD_REDIS_OUTAGE_GRACE: this worker is stopping."""
        return self.outage is not None and self.outage.gave_up

    def _may_reap(self) -> bool:
        """Not while every other worker's liveness key may still be expired after an outage."""
        return self.outage is None or self.outage.settled(self.liveness)

    # -- liveness -------------------------------------------------------------------
    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        _rewrite_rq_retry_lines()
        _children_die_with_this_process()
        super().bootstrap(*args, **kwargs)
        conn = self.connection
        conn.set(recovery.alive_key(self.name), os.getpid(), px=int(self.liveness * 1000))
        conn.sadd(recovery.WORKERS, self.name)
        self._beat_stop = threading.Event()
        self._beat_thread = threading.Thread(
            target=self._beat, name="hookbird-liveness", daemon=True
        )
        self._beat_thread.start()

    def _beat(self) -> None:
        assert self._beat_stop is not None
        conn = self.connection
        key = recovery.alive_key(self.name)
        interval = self.liveness / 3
        while not self._beat_stop.is_set():
            counted = metrics.TALLY.drain()  # this process's counts ride along
            try:
                with conn.pipeline(transaction=False) as pipe:
                    pipe.set(key, os.getpid(), px=int(self.liveness * 1000))
                    pipe.sadd(recovery.WORKERS, self.name)
                    metrics.write(pipe, counted)
                    pipe.execute()
                counted = metrics.Drained()
                if self._may_reap():
                    for queue in self.queues:
                        recovery.reap(conn, queue.name, max_attempts=self.max_attempts)
                watchdog.ensure_scheduled(conn, self.hookbird_settings)
                reconcile_schedule.ensure_scheduled(conn, self.hookbird_settings)
            except RedisGone:
                return  # the worker is stopping; it says why
            except Exception as exc:  # Redis blips must not kill the beat
                log.warning("liveness beat failed", error=f"{type(exc).__name__}: {exc}")
            metrics.TALLY.restore(counted)  # not written: the next beat sends them
            self._beat_stop.wait(interval)

    def clean_registries(self) -> None:
        # Rescue pushes of dead workers before RQ's own cleanup calls them abandoned.
        if not self._may_reap():
            return  # RQ's cleanup too: it would call those pushes abandoned
        for queue in self.queues:
            recovery.reap(self.connection, queue.name, max_attempts=self.max_attempts)
        super().clean_registries()

    def teardown(self) -> None:
        if self._beat_stop is not None:
            self._beat_stop.set()
        if self._beat_thread is not None:
            # A beat in flight would set the liveness key deleted below again, and its
            # reap would race the next worker's; it takes a round trip or two.
            self._beat_thread.join(COMMAND_POLL + 1.0)
        # RQ stops an idle worker by raising from the signal handler. Raised after a
        # command went out and before its reply was read, it leaves that connection in
        # the pool with BLPOP still blocking on the server, and the commands below would
        # queue behind it for minutes. Idle pooled connections go; those in use stay.
        with contextlib.suppress(redis.RedisError, OSError):
            self.connection.connection_pool.disconnect(inuse_connections=False)
        if self._grace_timer is not None:
            self._grace_timer.cancel()
        if not self.redis_gone:
            try:
                super().teardown()
                metrics.flush(self.connection)  # what was counted since the last beat
                # Only the liveness key goes: the worker stays listed in recovery.WORKERS
                # until the next reap, so a push it leaves "started" (it quit on an error,
                # e.g. Redis restarting mid-push) is run again rather than dead-lettered.
                self.connection.delete(recovery.alive_key(self.name))
                return
            except RedisGone:
                pass  # Redis went while stopping (a stop does not wait it out)
        self._teardown_without_redis()

    def _teardown_without_redis(self) -> None:
        """RQ's teardown minus what needs Redis: the scheduler goes, the commands thread stops.

        The scheduler is killed rather than asked to stop: releasing its lock would wait out
        a grace of its own. The lock expires by itself.
        """
        self._kill_scheduler()
        self.unsubscribe()

    def _kill_scheduler(self) -> None:
        """At once, as this worker gives up: before the scheduler's own grace runs out too."""
        scheduler = getattr(self, "scheduler", None)
        process = getattr(scheduler, "_process", None)
        if process is None or not process.pid or os.getpid() != self.pid:
            return  # none, or this is the scheduler or a fork worker's child
        if process.exitcode is not None:
            return  # already gone (and its pid maybe someone else's)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.join(5)

    # -- Redis outages (see the module docstring) -------------------------------------
    def execute_job(self, job: Any, queue: Any) -> None:
        try:
            super().execute_job(job, queue)
        except redis.ConnectionError:
            if self.redis_gone:
                raise StopRequested() from None  # RQ's work loop stops quietly on it
            raise

    # -- RQ's command channel (see the module docstring) ----------------------------
    _commands: threading.Thread | None = None
    _commands_stop: threading.Event | None = None

    def subscribe(self) -> None:
        if not _RQ_COMMAND_CHANNEL:
            super().subscribe()
            return
        pubsub = self.connection.pubsub()
        pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub = pubsub
        self._commands_stop = threading.Event()
        self._commands = threading.Thread(
            target=self._read_commands,
            args=(pubsub, self._commands_stop),
            name="hookbird-commands",
            daemon=True,
        )
        self._commands.start()

    def _read_commands(self, pubsub: Any, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                pubsub.get_message(ignore_subscribe_messages=True, timeout=COMMAND_POLL)
            except RedisGone:
                return  # the worker is stopping; it says why
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # redis-py reconnects and subscribes again on the next read
                if not stop.is_set():
                    log.warning("command channel lost", error=f"{type(exc).__name__}: {exc}")
                    stop.wait(2.0)
            except Exception as exc:  # a malformed command must not end the channel
                log.warning("command failed", error=f"{type(exc).__name__}: {exc}")
                stop.wait(COMMAND_POLL)

    def unsubscribe(self) -> None:
        thread, stop, pubsub = self._commands, self._commands_stop, self.pubsub
        if thread is None or stop is None or pubsub is None:
            super().unsubscribe()
            return
        self._commands = None
        stop.set()  # first, so the reply to UNSUBSCRIBE ends the thread's wait
        with contextlib.suppress(redis.RedisError, OSError):
            pubsub.unsubscribe()
        thread.join(COMMAND_POLL + 1.0)
        if not thread.is_alive():  # else it dies with the process; never close under it
            pubsub.close()

    # -- waking parked pushes ---------------------------------------------------------
    def handle_job_retry(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> None:
        """After RQ has scheduled a parked push: if its turn came meanwhile, queue it now."""
        super().handle_job_retry(job, queue, *args, **kwargs)
        conn = self.connection
        if conn.delete(wake_key(job.id)) and conn.zrem(queue.scheduled_job_registry.key, job.id):
            queue.enqueue_job(job, at_front=True)

    # -- RQ's own worker heartbeat ---------------------------------------------------
    _rq_beat_at: float = 0.0
    _rq_beat_until: float = 0.0

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        """RQ's worker heartbeat, sent at most once a second and in one round trip.

        RQ calls it three times per job, each time as three separate commands: nine
        round trips per push that only push an expiry minutes ahead. A call is skipped
        when one sent less than a second ago already reaches as far.
        """
        if self.redis_gone:
            raise StopRequested()  # RQ calls this first in its dequeue loop and after each job
        timeout = timeout or self.worker_ttl + 60
        now = time.monotonic()
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
        elif now - self._rq_beat_at < 1.0 and self._rq_beat_until >= now + timeout - 1.0:
            return
        else:
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(timeout, pipeline=pipe)
                pipe.execute()
        self._rq_beat_at, self._rq_beat_until = now, now + timeout

    # -- graceful stop ----------------------------------------------------------------
    stop_asked = False

    def handle_warm_shutdown_request(self) -> None:
        # Stopping: no waiting out a Redis outage on the way out (Redis may be stopping
        # with us, as under `hookbird dev`). A push cut off is run again by recovery.
        self.stop_asked = True
        if self.outage is not None:
            self.outage.stop_waiting()
        super().handle_warm_shutdown_request()
        if self._grace_timer is None:
            self._grace_timer = threading.Timer(self.shutdown_grace, self._grace_over)
            self._grace_timer.daemon = True
            self._grace_timer.start()

    def _grace_over(self) -> None:
        log.warning("shutdown grace period over: interrupting the running push")
        self._interrupt_running()

    def _interrupt_running(self) -> None:
        raise NotImplementedError


class HookbirdSimpleWorker(HookbirdMixin, SimpleWorker):
    """Runs pushes in this process (see the module docstring for why it is the default)."""

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        signal.signal(GRACE_SIGNAL, _on_grace_signal)

    def _interrupt_running(self) -> None:
        ident = threading.main_thread().ident
        if ident is not None:
            signal.pthread_kill(ident, GRACE_SIGNAL)


class HookbirdForkWorker(HookbirdMixin, Worker):
    """Runs each push in a child process."""

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        signal.signal(GRACE_SIGNAL, _on_grace_signal)

    def perform_job(self, job: Any, queue: Any, *args: Any, **kwargs: Any) -> bool:
        """RQ's, in the child; then the child's counts go to Redis: it has no beat."""
        try:
            return bool(super().perform_job(job, queue, *args, **kwargs))
        finally:
            metrics.flush(self.connection)

    def _interrupt_running(self) -> None:
        pid = self.horse_pid
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, GRACE_SIGNAL)

    def handle_work_horse_killed(self, job: Any, retpid: Any, ret_val: Any, rusage: Any) -> None:
        """The child died mid-push (SIGKILL, segfault): run the push again, up to a limit."""
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        conn = self.connection
        crashes = int(conn.hincrby(state_key(job.id), "crashes", 1))
        entity = jobs.entity_of(conn, job)
        if after_crash(crashes, self.max_attempts) == Status.QUEUED:
            job.retries_left = 1
            job.retry_intervals = [0]
            job.enqueue_at_front_on_retry = True
            conn.hset(state_key(job.id), "status", Status.QUEUED)
        else:
            reason = f"its worker process died while handling it, {crashes} times"
            with conn.pipeline() as pipe:
                pipe.hset(state_key(job.id), mapping={"status": Status.DEAD, "error": reason})
                recovery.keep_while_dead_lettered(conn, pipe, job)
                if entity:
                    pipe.zrem(entity_set_key(entity_suffix(*entity)), job.id)
                pipe.execute()
        if entity:
            key = entity_lock_key(entity_suffix(*entity))
            conn.eval(recovery.RELEASE_LOCK, 1, key, job.id)


WORKER_CLASSES: dict[str, type[HookbirdMixin]] = {
    "simple": HookbirdSimpleWorker,
    "fork": HookbirdForkWorker,
}
