"""``hookbird worker`` (run handlers for queued pushes) and ``hookbird handlers`` (list them)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import warnings
from dataclasses import replace
from typing import Any

import redis

from hookbird.children import die_with_parent_hook
from hookbird.cli import EXIT_OK, CommandError, add_command, redis_client
from hookbird.logs import configure_logging, get_logger
from hookbird.routing import Router
from hookbird.settings import Settings


def load_handlers(settings: Settings) -> Router:
    from workers.plugins import PluginError, load_router

    try:
        return load_router(settings)
    except PluginError as exc:
        raise CommandError(str(exc)) from exc


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from rq import Queue

    from workers import runtime
    from workers.worker import WORKER_CLASSES

    settings.refuse_placeholders()
    if args.worker_class:
        settings = replace(settings, worker_class=args.worker_class)
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    redis_client(settings).close()  # fail early, with a clear message, if Redis is not there
    assert settings.redis_url
    # No socket timeout here: RQ blocks on the queue for minutes at a time.
    connection = redis.Redis.from_url(settings.redis_url)
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
    return EXIT_OK


#: How to run this CLI in a child process. Not ``-m hookbird.cli``: that would load
#: the module twice (as ``__main__`` too) and CommandError would escape as a traceback.
CLI = (sys.executable, "-c", "import sys; from hookbird.cli import main; sys.exit(main())")


def dev_worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["REDIS_URL"] = settings.redis_url or ""
    return env


def start_dev_worker(settings: Settings, *, capture: bool = False) -> subprocess.Popen[bytes]:
    """`hookbird dev`'s worker: a child process on the same Redis, stopped with the parent.

    ``capture``: its output comes through a pipe (stdout and stderr), for
    :class:`hookbird.children.Output` to relay and remember.
    """
    proc = subprocess.Popen(
        [*CLI, "worker"],
        env=dev_worker_env(settings),
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        start_new_session=True,  # Ctrl-C reaches only `dev`, which then stops the worker once
        # Linux: SIGTERM when `dev` dies, even by SIGKILL, so the worker is no orphan
        preexec_fn=die_with_parent_hook(),
    )
    print(
        f"  worker     pid {proc.pid} (hookbird worker; `hookbird handlers` lists handlers)",
        file=sys.stderr,
        flush=True,
    )
    return proc


def handlers_import_error(settings: Settings) -> str | None:
    """Why the handler modules do not import in a fresh process (as a new worker's), or None.

    A fresh process, because this one may hold an older copy of a module the user
    has since edited.
    """
    result = subprocess.run(
        [*CLI, "handlers"],
        env=dev_worker_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 0:
        return None
    return result.stderr.strip().removeprefix("hookbird: ") or f"exit code {result.returncode}"


def stop_dev_worker(proc: subprocess.Popen[bytes], settings: Settings) -> None:
    """SIGTERM, wait out the shutdown grace period, then kill: never leave it running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(settings.shutdown_grace + 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cmd_handlers(args: argparse.Namespace, settings: Settings) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        router = load_handlers(settings)
    for warning in caught:
        print(f"warning: {warning.message}")
    if args.event:
        found = router.handlers_for(args.event, args.entity_type)
        what = args.event + (f" [{args.entity_type}]" if args.entity_type else "")
        if not found:
            print(f"no handler would receive {what}")
            return EXIT_OK
        print(f"a push {what} reaches, in this order:")
        for handler in found:
            extra = " (latest only)" if handler.latest_only else ""
            print(f"  {handler.name}{extra}    from {router.sources.get(handler.name, '?')}")
        return EXIT_OK
    if not len(router):
        print(
            "no handlers installed. Install a plugin package (entry point group "
            "`hookbird.handlers`) or set HOOKBIRD_HANDLERS=your.module"
        )
        return EXIT_OK
    by_name: dict[str, list[str]] = {}
    for route in router:
        by_name.setdefault(route.name, []).append(route.describe())
    width = max(len(n) for n in by_name)
    for name, routes in by_name.items():
        print(f"{name:<{width}}  on {', '.join(routes)}")
        print(f"{'':<{width}}  from {router.sources.get(name, '?')}")
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

    handlers = add_command(
        commands,
        "handlers",
        "List every installed handler, where it came from and what it matches.",
        "hookbird handlers --event sales_invoice_state_changed_to_paid",
        cmd_handlers,
    )
    handlers.add_argument("--event", metavar="ACTION", help="show which handlers this push reaches")
    handlers.add_argument("--entity-type", help="with --event: the push's entity_type")
