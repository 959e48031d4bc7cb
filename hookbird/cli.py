"""The ``hookbird`` command line: parser assembly, settings, errors and exit codes.

Each command (with its sub-commands) lives in the module of its name under
``hookbird.commands`` and exposes ``register(commands)``; :data:`COMMAND_MODULES` lists
them in help order. What they share (:class:`~hookbird.commands.helpers.CommandError`,
exit codes, Redis, secrets) is in :mod:`hookbird.commands.helpers`. The command line
sits on top: it may import the receiver and the workers, and nothing imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import textwrap
from collections.abc import Sequence

from hookbird import __version__, devstate
from hookbird.commands.helpers import EXIT_ERROR, EXIT_USAGE, Command, CommandError
from hookbird.logs import configure_logging
from hookbird.settings import Settings, SettingsError

#: Modules under ``hookbird.commands`` that register sub-commands, in help order.
COMMAND_MODULES = (
    "serve",
    "dev",
    "worker",
    "handlers",
    "send",
    "events",
    "failed",
    "reconcile",
    "webhooks",
    "oauth",
    "api",
    "config",
    "doctor",
)


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
              hookbird reconcile --administration 456   what pushes missed, queued as events
              hookbird api GET /{administration_id}/contacts --administration 456

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
    raise SystemExit(main())
