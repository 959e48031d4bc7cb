"""The ``hookbird`` command line: parser assembly, settings, errors and exit codes.

Each group of sub-commands lives in its own module under ``hookbird.commands`` and
exposes ``register(commands)``; :data:`COMMAND_MODULES` lists them in help order.
A command is a function ``(args, settings) -> exit code``; it raises
:class:`CommandError` with a message that says what to do next.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import signal
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import redis

from hookbird import __version__, devstate
from hookbird.logs import configure_logging
from hookbird.settings import Settings, SettingsError

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

#: Modules under ``hookbird.commands`` that register sub-commands, in help order.
COMMAND_MODULES = ("serve", "worker", "send", "events", "webhooks", "oauth", "config", "doctor")

Command = Callable[[argparse.Namespace, Settings], int]


class CommandError(Exception):
    """A failure the user can act on; the message says how."""


def add_command(
    subparsers: Any,
    name: str,
    help_text: str,
    example: str,
    func: Command | None,
    *,
    configures_logging: bool = False,
) -> argparse.ArgumentParser:
    """Add a sub-command whose ``--help`` ends with an example.

    ``configures_logging``: the command sets up logging itself (long-running servers).
    """
    sub: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=f"example:\n  {example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if func is not None:
        sub.set_defaults(func=func, configures_logging=configures_logging)
    return sub


_SECRET_QUERY = re.compile(r"([?&][^=&#]*(?:password|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE)


def safe_url(url: str) -> str:
    """A Redis URL without its password, for messages.

    ``redis://default:p@ss@host`` → ``redis://default:***@host``: the password runs to
    the last ``@`` (it may hold ``@`` itself, unescaped). Query values that are
    passwords (``?password=``, ``sentinel_password=``) become ``***`` too.
    """
    url = _SECRET_QUERY.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0 or rest.startswith("/"):  # a socket path may hold an @
        return url
    user, colon, _password = rest[:at].partition(":")
    shown = f"{user}:***" if colon and user else "***"
    return f"{scheme}://{shown}@{rest[at + 1 :]}"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 push``, ``2 pushes``: the count with the word in the right number."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {many or word + 's'}"


def redis_url_problem(url: str) -> str | None:
    """Why redis-py cannot use this REDIS_URL (e.g. ``localhost:6379``), or None."""
    try:
        redis.connection.parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        return (
            f"REDIS_URL {safe_url(url)!r} is not a Redis URL ({exc}); it takes the form "
            "redis://host:port/db, e.g. redis://localhost:6379/0 (rediss:// for TLS, "
            "unix:///path/redis.sock for a socket)"
        )
    return None


def root_cause(exc: BaseException) -> str:
    """The innermost reason behind an exception chain (a DNS failure, a refused connection),
    which wrappers such as ``ConnectError`` often hide behind an empty or generic message."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    outer, inner = str(exc) or type(exc).__name__, str(seen) or type(seen).__name__
    return outer if seen is exc or inner in outer else f"{outer} ({inner})"


def redis_client(settings: Settings) -> redis.Redis:
    """A connected synchronous Redis client, or a :class:`CommandError` saying why not."""
    if not settings.redis_url:
        raise CommandError(
            "REDIS_URL is not set. Point it at the Redis hookbird uses, for example\n"
            "  REDIS_URL=redis://localhost:6379/0 hookbird …\n"
            "or run this command in the folder where `hookbird dev` runs: it uses dev's Redis."
        )
    problem = redis_url_problem(settings.redis_url)
    if problem:
        raise CommandError(problem)
    client = unchecked_redis_client(settings)
    unreachable = ping_failure(client)
    if unreachable:
        client.close()
        raise CommandError(f"cannot reach Redis at {safe_url(settings.redis_url)}: {unreachable}")
    return client


def unchecked_redis_client(settings: Settings) -> redis.Redis:
    """A client on REDIS_URL with the configured timeouts; nothing is sent yet."""
    assert settings.redis_url
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )


def ping_failure(client: redis.Redis) -> str | None:
    """Why Redis does not answer PING (the innermost reason), or None when it does."""
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        return root_cause(exc)
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookbird",
        description="Receive Moneybird webhooks, queue them durably, handle each once.",
        epilog=textwrap.dedent("""\
            examples:
              hookbird dev                       Redis, receiver, worker, dashboard on a laptop
              hookbird send contact_created      deliver a push like Moneybird would
              hookbird doctor                    check Redis, handlers, Moneybird, webhooks
              REDIS_URL=redis://redis:6379/0 hookbird serve --port 8000
              hookbird webhooks add --webhook-id 123 --administration 456 --token T

            Configuration comes from the environment and an optional .env file;
            `hookbird config` shows what is in effect. Every command has --help."""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"hookbird {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hookbird.commands.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Command | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = Settings.from_env()
        if args.command != "dev":  # the others use the dev running in this folder, if any
            settings = devstate.apply(settings)
        if not getattr(args, "configures_logging", False):
            configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
        return func(args, settings)
    except (CommandError, SettingsError) as exc:
        print(f"hookbird: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `hookbird events list | head`: the reader left; say nothing more, as `cat` would.
        # Python would complain again when it flushes stdout at exit, so point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE  # what a process killed by SIGPIPE gives the shell


if __name__ == "__main__":
    # Run the imported module's main, not this copy's: command modules import
    # hookbird.cli, and their CommandError must be the one main() catches.
    from hookbird.cli import main as installed_main

    raise SystemExit(installed_main())
