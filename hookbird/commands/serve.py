"""``hookbird serve`` (production receiver) and ``hookbird dev`` (everything on a laptop)."""

from __future__ import annotations

import argparse
import secrets
import sys
import textwrap
from pathlib import Path
from typing import Any

from hookbird import __version__
from hookbird.cli import EXIT_OK, CommandError, add_command, safe_url
from hookbird.logs import configure_logging
from hookbird.settings import Settings


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.server import uvicorn_options

    if not settings.redis_url:
        raise CommandError(
            "REDIS_URL is not set: `hookbird serve` needs the Redis your workers use.\n"
            "For a laptop setup with a private Redis, run `hookbird dev` instead."
        )
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    uvicorn.run(
        "receiver.app:create_app_from_env",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers,
        **uvicorn_options(settings),
    )
    return EXIT_OK


def dev_token(data_dir: Path) -> str:
    """The token `hookbird dev` accepts: kept in the data dir so it survives restarts."""
    path = data_dir / "dev-webhook-token"
    if path.is_file():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def cmd_dev(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from hookbird import children
    from hookbird.redis_server import RedisServer, RedisServerError
    from receiver.app import create_app
    from receiver.server import uvicorn_options

    lock = children.lock_data_dir(settings.data_dir)
    if lock is None:
        holder = (settings.data_dir / "dev.lock").read_text().strip() or "?"
        raise CommandError(
            f"another `hookbird dev` (pid {holder}) is running in this folder and owns "
            f"{settings.data_dir}. Stop it first, or give this one its own "
            "HOOKBIRD_DATA_DIR and --port."
        )
    server: RedisServer | None = None
    changes: dict[str, Any] = {"log_each_push": True}
    if not settings.redis_url:
        server = RedisServer(
            settings.data_dir / "redis", port=args.redis_port, die_with_parent=True
        )
        try:
            server.start()
        except RedisServerError as exc:
            raise CommandError(str(exc)) from exc
        changes["redis_url"] = server.url
    token_note = ""
    if not settings.webhook_token:
        changes["webhook_token"] = dev_token(settings.data_dir)
        token_note = f" (kept in {settings.data_dir / 'dev-webhook-token'})"
    settings = settings.replace(**changes)
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    host, port = args.host or settings.host, args.port or settings.port
    base = f"http://{host}:{port}"
    redis_url = settings.redis_url or ""
    # `hookbird send` in this folder reads where to deliver from here.
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    endpoint_file = settings.data_dir / "dev-endpoint"
    endpoint_file.write_text(f"http://{reachable}:{port}/webhooks/moneybird\n")
    private = (
        f" (private, pid {server.process.pid}, data in {server.data_dir})"
        if server and server.process
        else ""
    )
    dashboard = None
    if args.no_dashboard:
        dashboard_line = "off (--no-dashboard)"
    elif children.dashboard_installed():
        dashboard = children.spawn(children.dashboard_command(redis_url, host, args.dashboard_port))
        dashboard_line = (
            f"http://{host}:{args.dashboard_port}/  (rq-dashboard, pid {dashboard.pid})"
        )
    else:
        dashboard_line = "not installed: pip install 'hookbird[dashboard]'"
    banner = textwrap.dedent(f"""
        hookbird {__version__} dev
          endpoint   POST {base}/webhooks/moneybird
          health     {base}/healthz   ready {base}/readyz   metrics {base}/metrics
          dashboard  {dashboard_line}
          redis      {safe_url(redis_url)}{private}
          token      webhook_token={settings.webhook_token}{token_note}
          try it     hookbird send contact_created
        Ctrl-C stops everything.
    """)
    print(banner, file=sys.stderr, flush=True)
    from hookbird.commands.worker import start_dev_worker, stop_dev_worker

    try:
        worker = start_dev_worker(settings)
        try:
            uvicorn.run(
                create_app(settings),
                host=host,
                port=port,
                **uvicorn_options(settings),
            )
        finally:
            children.stop(dashboard)
            stop_dev_worker(worker, settings)
    finally:
        children.stop(dashboard)
        if server is not None:
            server.stop()
        endpoint_file.unlink(missing_ok=True)
        lock.close()
    return EXIT_OK


def register(commands: Any) -> None:
    serve = add_command(
        commands,
        "serve",
        "Run the receiver (POST /webhooks/moneybird) under uvicorn.",
        "REDIS_URL=redis://localhost:6379/0 hookbird serve --host 0.0.0.0 --port 8000",
        cmd_serve,
        configures_logging=True,
    )
    serve.add_argument("--host", help="address to bind (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="receiver processes (default 1; each serves its own /metrics)",
    )

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
