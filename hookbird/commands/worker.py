"""``hookbird worker``: run handlers for queued pushes."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from hookbird.commands.helpers import EXIT_OK, add_command, load_handlers, redis_client, safe_url
from hookbird.logs import configure_logging, get_logger
from hookbird.outage import Outage, ride_out
from hookbird.redis_url import sync_client
from hookbird.settings import Settings


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from rq import Queue

    from workers import runtime
    from workers.worker import EXIT_REDIS_GONE, WORKER_CLASSES

    settings.refuse_placeholders()
    if args.worker_class:
        settings = replace(settings, worker_class=args.worker_class)
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    redis_client(settings).close()  # fail early, with a clear message, if Redis is not there
    assert settings.redis_url
    # No socket timeout here: RQ blocks on the queue for minutes at a time.
    connection = sync_client(settings.redis_url)
    # Every command waits out a Redis outage of up to the grace (hookbird.outage).
    connection = ride_out(
        connection, Outage(settings.redis_outage_grace, safe_url(settings.redis_url))
    )
    router = load_handlers(settings)
    rt = runtime.build_runtime(settings, router=router, connection=connection)
    runtime.install(rt)
    names = args.queue or [settings.queue]
    cls = WORKER_CLASSES[settings.worker_class]
    queues = [Queue(n, connection=connection) for n in names]
    worker = cls(queues, connection=connection, settings=settings)
    log = get_logger("hookbird.worker")
    log.info(
        "worker starting",
        worker=worker.name,
        worker_class=settings.worker_class,
        queues=names,
        handlers=len({r.name for r in router}),
    )
    if not len(router):
        log.warning("no handlers are installed: pushes will be marked handled and dropped")
    try:
        worker.work(burst=args.burst, with_scheduler=True, max_jobs=args.max_jobs)
    finally:
        for close in rt.closers:
            close()
    if worker.redis_gone and worker.stop_asked:
        log.warning("stopped without waiting for Redis", redis=safe_url(settings.redis_url))
    elif worker.redis_gone:
        log.error(
            "Redis unreachable for longer than the grace",
            redis=safe_url(settings.redis_url),
            grace=settings.redis_outage_grace,
            hint=(
                "the worker exits for its supervisor to restart it; its push runs again on "
                "another worker. Bring Redis back, or raise HOOKBIRD_REDIS_OUTAGE_GRACE."
            ),
        )
        return EXIT_REDIS_GONE
    return EXIT_OK


def register(commands: Any) -> None:
    worker = add_command(
        commands,
        "worker",
        "Run queued pushes through the installed handler plugins (an RQ worker with "
        "its scheduler, so retries run).",
        "REDIS_URL=redis://localhost:6379/0 hookbird worker",
        cmd_worker,
        configures_logging=True,
    )
    worker.add_argument(
        "--class",
        dest="worker_class",
        choices=("simple", "fork"),
        help="simple: run in this process (default, fastest); fork: a child per push",
    )
    worker.add_argument(
        "--queue", action="append", help="queue to work on (default: HOOKBIRD_QUEUE); repeatable"
    )
    worker.add_argument("--burst", action="store_true", help="stop when the queue is empty")
    worker.add_argument("--max-jobs", type=int, help="stop after this many jobs")
