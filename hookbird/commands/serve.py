"""``hookbird serve``: the production receiver under uvicorn."""

from __future__ import annotations

import argparse
from typing import Any

from hookbird.commands.helpers import (
    EXIT_OK,
    LOOPBACK,
    CommandError,
    add_command,
    ping_failure,
    redis_url_problem,
    safe_url,
    unchecked_redis_client,
)
from hookbird.logs import configure_logging, get_logger
from hookbird.settings import Settings


def warn_if_redis_is_down(settings: Settings) -> None:
    """One clear line at startup when Redis does not answer; the receiver still starts.

    It answers 503 (Moneybird retries) until Redis is back, and /readyz says so: a
    receiver that refused to start would turn a Redis restart into lost pushes.
    """
    client = unchecked_redis_client(settings)
    try:
        unreachable = ping_failure(client)
    finally:
        client.close()
    if unreachable:
        get_logger("hookbird.serve").warning(
            "Redis unreachable at startup: pushes get 503 until it answers",
            redis=safe_url(settings.redis_url or ""),
            error=unreachable,
        )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.server import uvicorn_options

    settings.refuse_placeholders()
    if not settings.redis_url:
        raise CommandError(
            "REDIS_URL is not set: `hookbird serve` needs the Redis your workers use.\n"
            "For a laptop setup with a private Redis, run `hookbird dev` instead."
        )
    problem = redis_url_problem(settings.redis_url)
    if problem:
        raise CommandError(problem)
    host = args.host or settings.host
    if settings.console == "open" and host not in LOOPBACK:
        raise CommandError(
            f"HOOKBIRD_CONSOLE=open serves the events console without a password, and {host} "
            "is reachable from other machines: set HOOKBIRD_CONSOLE_PASSWORD and "
            "HOOKBIRD_CONSOLE=auto, or listen on 127.0.0.1"
        )
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    warn_if_redis_is_down(settings)
    uvicorn.run(
        "receiver.app:create_app_from_env",
        factory=True,
        host=host,
        port=args.port or settings.port,
        workers=args.workers,
        **uvicorn_options(settings),
    )
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
