"""``hookbird dev``: a private Redis, the receiver, a worker and rq-dashboard on a laptop."""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from hookbird import __version__
from hookbird.children import die_with_parent_hook
from hookbird.commands.helpers import (
    EXIT_OK,
    LOOPBACK,
    CommandError,
    add_command,
    load_handlers,
    safe_url,
)
from hookbird.logs import configure_logging
from hookbird.settings import Settings

#: How to add rq-dashboard to a checkout (hookbird is not on a package index).
INSTALL_DASHBOARD = ".venv/bin/pip install -e '.[dashboard]' (scripts/bootstrap does it)"


def dev_token(data_dir: Path) -> str:
    """The token `hookbird dev` accepts: kept in the data dir so it survives restarts."""
    from hookbird.devstate import TOKEN_FILE

    path = data_dir / TOKEN_FILE
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def check_ports(host: str, port: int, redis_port: int | None, dashboard_port: int | None) -> None:
    """Refuse, naming the flag to change, before anything starts on a taken port."""
    from hookbird.children import DASHBOARD_HOST, port_taken

    wanted = [("--port (or PORT)", host, port)]
    if redis_port is not None:
        wanted.append(("--redis-port", "127.0.0.1", redis_port))
    if dashboard_port is not None:
        wanted.append(("--dashboard-port (or --no-dashboard)", DASHBOARD_HOST, dashboard_port))
    seen: dict[int, str] = {}
    for flag, where, number in wanted:
        if number in seen:
            raise CommandError(f"{seen[number]} and {flag} both say port {number}: change one")
        seen[number] = flag.split()[0]
        if port_taken(where, number):
            raise CommandError(
                f"port {number} on {where} is already in use (another hookbird dev, Redis or "
                f"server?): choose another with {flag}"
            )


def _private_redis_port(args: argparse.Namespace, data_dir: Path) -> int:
    """--redis-port, else the last dev's port while it is free (URLs stay valid), else any."""
    from hookbird import devstate
    from hookbird.children import port_taken
    from hookbird.redis_server import free_port

    if args.redis_port:
        return int(args.redis_port)
    last = devstate.read(data_dir)
    if last is not None and last.redis_port and not port_taken("127.0.0.1", last.redis_port):
        return last.redis_port
    return free_port()


def _file_tail(path: Path, lines: int = 10) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        text = []
    shown = "\n".join(f"    | {line}" for line in text)
    return f"{shown}\n    (whole log: {path})" if shown else f"    (see {path})"


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from hookbird import children, devstate
    from hookbird.redis_server import RedisServer, RedisServerError
    from receiver.app import create_app
    from receiver.server import uvicorn_options

    settings.refuse_placeholders()
    lock = children.lock_data_dir(settings.data_dir)
    if lock is None:
        holder = (settings.data_dir / "dev.lock").read_text().strip() or "?"
        raise CommandError(
            f"another `hookbird dev` (pid {holder}) is running in this folder and owns "
            f"{settings.data_dir}. Stop it first, or give this one its own "
            "HOOKBIRD_DATA_DIR and --port."
        )
    host, port = args.host or settings.host, args.port or settings.port
    with_dashboard = not args.no_dashboard and children.dashboard_installed()
    state = devstate.DevState(pid=os.getpid())
    server: RedisServer | None = None
    supervisor: children.Supervisor | None = None
    try:
        redis_port = None if settings.redis_url else _private_redis_port(args, settings.data_dir)
        check_ports(host, port, redis_port, args.dashboard_port if with_dashboard else None)
        load_handlers(settings)  # a handler module that does not import: say so, start nothing
        changes: dict[str, Any] = {"log_each_push": True}
        loopback = host in LOOPBACK
        if settings.console == "auto" and not settings.console_password and loopback:
            changes["console"] = "open"  # a laptop's console: no password on 127.0.0.1
        if redis_port is not None:
            server = RedisServer(settings.data_dir / "redis", port=redis_port, die_with_parent=True)
            try:
                server.start()
            except RedisServerError as exc:
                raise CommandError(str(exc)) from exc
            changes["redis_url"] = server.url
        token_note = ""
        if not settings.webhook_token:
            changes["webhook_token"] = dev_token(settings.data_dir)
            token_note = f" (kept in {settings.data_dir / devstate.TOKEN_FILE})"
        settings = replace(settings, **changes)
        configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
        base = f"http://{host}:{port}"
        redis_url = settings.redis_url or ""
        # every command in this folder finds this dev (its Redis, token, endpoint) from here
        reachable = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        state = devstate.DevState(
            pid=os.getpid(),
            redis_url=redis_url,
            redis_port=redis_port,
            endpoint=f"http://{reachable}:{port}/webhooks/moneybird",
            token_file=bool(token_note),
        )
        devstate.write(settings.data_dir, state)
        private = (
            f" (private, pid {server.process.pid}, data in {server.data_dir})"
            if server and server.process
            else ""
        )
        watched: list[children.Child] = []
        if server is not None:
            private_redis = server

            def restart_redis() -> subprocess.Popen[bytes]:
                process = private_redis.start().process
                assert process is not None
                return process

            watched.append(
                children.Child(
                    "private Redis",
                    start=restart_redis,
                    output=lambda: _file_tail(private_redis.log_file),
                    process=server.process,
                    started=time.monotonic(),
                )
            )
        dashboard: children.Child | None = None
        if args.no_dashboard:
            dashboard_line = "off (--no-dashboard)"
        elif with_dashboard:
            dashboard_output = children.Output()
            command = children.dashboard_command(args.dashboard_port)
            dashboard_env = children.dashboard_env(redis_url)
            dashboard = children.Child(
                "dashboard",
                start=lambda: dashboard_output.follow(
                    children.spawn(
                        command,
                        env=dashboard_env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                    )
                ),
                output=dashboard_output.last,
            )
            dashboard.launch()
            watched.append(dashboard)
            assert dashboard.process is not None
            local_only = (
                ""
                if host in ("127.0.0.1", "localhost")
                else f"; local only, not on {host}: it can delete jobs and has no password"
            )
            dashboard_line = (
                f"http://{children.DASHBOARD_HOST}:{args.dashboard_port}/  "
                f"(rq-dashboard, pid {dashboard.process.pid}{local_only})"
            )
        else:
            dashboard_line = f"not installed: {INSTALL_DASHBOARD}"
        if settings.console in ("open", "auto") and (settings.console_password or loopback):
            console_line = f"{base}/console/"
        elif settings.console == "off":
            console_line = "off (HOOKBIRD_CONSOLE=off)"
        else:
            console_line = f"off: on {host} it needs HOOKBIRD_CONSOLE_PASSWORD"
        banner = textwrap.dedent(f"""
            hookbird {__version__} dev
              endpoint   POST {base}/webhooks/moneybird
              console    {console_line}
              health     {base}/healthz   ready {base}/readyz   metrics {base}/metrics
              dashboard  {dashboard_line}
              redis      {safe_url(redis_url)}{private}
              token      webhook_token={settings.webhook_token}{token_note}
              try it     hookbird send contact_created
            Ctrl-C stops everything.
        """)
        print(banner, file=sys.stderr, flush=True)
        worker_output = children.Output()
        dev_settings = settings
        worker = children.Child(
            "worker",
            start=lambda: worker_output.follow(start_dev_worker(dev_settings, capture=True)),
            output=worker_output.last,
            fatal=lambda: handlers_import_error(dev_settings),
        )
        worker.launch()
        watched.append(worker)
        # Giving up stops the receiver the way Ctrl-C does; dev then exits 1, saying why.
        supervisor = children.Supervisor(
            watched, on_give_up=lambda: os.kill(os.getpid(), signal.SIGINT)
        )
        supervisor.start()
        try:
            uvicorn.run(
                create_app(settings),
                host=host,
                port=port,
                **uvicorn_options(settings),
            )
        finally:
            supervisor.close()
            children.stop(dashboard.process if dashboard else None)
            if worker.process is not None:
                stop_dev_worker(worker.process, settings)
    except KeyboardInterrupt:
        if supervisor is None or supervisor.failure is None:
            raise
    finally:
        if supervisor is not None:
            supervisor.close()
        if server is not None:
            server.stop()
        devstate.stopped(settings.data_dir, state)
        lock.close()
    if supervisor is not None and supervisor.failure is not None:
        raise CommandError(f"dev stopped: {supervisor.failure}")
    return EXIT_OK


#: How to run this CLI in a child process: as the console script does, calling
#: ``hookbird.cli.main`` (``-m hookbird.cli`` would load that module a second time).
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


def register(commands: Any) -> None:
    dev = add_command(
        commands,
        "dev",
        "Run hookbird on a laptop: a private Redis (unless REDIS_URL is set), the "
        "receiver, a worker and rq-dashboard, with a ready-made webhook token.",
        "hookbird dev --port 8000",
        cmd_dev,
        configures_logging=True,
    )
    dev.add_argument("--host", help="address to bind (default: HOST or 127.0.0.1)")
    dev.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    dev.add_argument("--redis-port", type=int, help="port for the private Redis (default: free)")
    dev.add_argument(
        "--dashboard-port", type=int, default=9181, help="rq-dashboard's port (default 9181)"
    )
    dev.add_argument("--no-dashboard", action="store_true", help="do not start rq-dashboard")
