"""What the command modules share: how a command is declared, fails and exits, how it
reaches Redis, reads secrets and words Moneybird's errors, and the event filters.

``hookbird.cli`` assembles the parser from the command modules, which each hold one
command and import what they have in common from here (as ``rq/cli/helpers.py`` does
for RQ's commands). A command is a function ``(args, settings) -> exit code``; it
raises :class:`CommandError` with a message that says what to do next.

Secrets a command needs are read where other users cannot see them. Anything on the
command line shows in ``ps`` for every user of the machine and stays in shell history.
Commands that take a token, a signing secret or an OAuth code therefore read it from
standard input (the flag's value ``-``) or, with the flag left out, from a prompt that
does not echo (only on a terminal). A value given on the command line still works,
with one warning saying why it should not be (:class:`SecretReader`).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hookbird.moneybird import errors
from hookbird.moneybird.credentials import CredentialError
from hookbird.outage import Outage, ride_out
from hookbird.progress import Progress
from hookbird.redis_url import sync_client, url_problem
from hookbird.routing import Router
from hookbird.settings import Settings

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

#: Addresses only this machine reaches: where a console without a password may listen.
LOOPBACK = ("127.0.0.1", "localhost", "::1")

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


def redis_url_problem(url: str) -> str | None:
    """Why hookbird cannot use this REDIS_URL (e.g. ``localhost:6379``), or None."""
    return url_problem(url, safe_url(url))


def root_cause(exc: BaseException) -> str:
    """The innermost reason behind an exception chain (a DNS failure, a refused connection),
    which wrappers such as ``ConnectError`` often hide behind an empty or generic message."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    outer, inner = str(exc) or type(exc).__name__, str(seen) or type(seen).__name__
    return outer if seen is exc or inner in outer else f"{outer} ({inner})"


#: Seconds between two "waiting for Redis" lines of a command.
WAITING_LINE_EVERY = 10.0


def redis_client(settings: Settings) -> redis.Redis:
    """A connected synchronous Redis client, or a :class:`CommandError` saying why not.

    Redis not answering is waited out for up to HOOKBIRD_REDIS_OUTAGE_GRACE, with a
    "waiting for Redis" line on stderr now and then; the client returned rides out an
    outage of up to the grace too (:mod:`hookbird.outage`).
    """
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
    client.set_retry(Retry(NoBackoff(), 0))  # one try per PING: wait_for_redis paces them
    where = safe_url(settings.redis_url)
    unreachable = ping_failure(client)
    if unreachable:
        unreachable = wait_for_redis(client, where, settings.redis_outage_grace, unreachable)
    if unreachable:
        client.close()
        waited = (
            f" (waited {settings.redis_outage_grace:g} s, HOOKBIRD_REDIS_OUTAGE_GRACE)"
            if settings.redis_outage_grace
            else ""
        )
        raise CommandError(
            f"cannot reach Redis at {where}: {unreachable}{waited}\n"
            "check that Redis runs and that REDIS_URL points at it, then run this again"
        )
    return ride_out(client, Outage(settings.redis_outage_grace, where))


def wait_for_redis(client: redis.Redis, where: str, grace: float, why: str) -> str | None:
    """PING until Redis answers (None) or ``grace`` seconds have passed (the last reason)."""
    deadline = time.monotonic() + grace
    said_at = -WAITING_LINE_EVERY
    while True:
        now = time.monotonic()
        if now >= deadline:
            return why
        if now - said_at >= WAITING_LINE_EVERY:
            print(
                f"waiting for Redis at {where} ({deadline - now:.0f}s left): {why}", file=sys.stderr
            )
            said_at = now
        time.sleep(min(0.5, deadline - now))
        failure = ping_failure(client)
        if failure is None:
            return None
        why = failure


def unchecked_redis_client(settings: Settings) -> redis.Redis:
    """A client on REDIS_URL with the configured timeouts; nothing is sent yet."""
    assert settings.redis_url
    return sync_client(
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


def load_handlers(settings: Settings) -> Router:
    """The installed handlers, or a :class:`CommandError` naming the plugin that fails."""
    from workers.plugins import PluginError, load_router

    try:
        return load_router(settings)
    except PluginError as exc:
        raise CommandError(str(exc)) from exc


def explain(exc: Exception, *, hints: Mapping[type[Exception], str] | None = None) -> CommandError:
    """A Moneybird or credential error as a message that says what to do next;
    ``hints`` replaces the default advice for some error types."""
    if isinstance(exc, CredentialError):
        return CommandError(str(exc))
    advice: dict[type[Exception], str] = {
        errors.Unauthorized: "check MONEYBIRD_API_TOKEN, or reconnect with `hookbird oauth url`",
        errors.Forbidden: "the token lacks the `settings` scope that webhooks need",
        errors.NotFound: "check the administration and webhook ids (`hookbird webhooks list`)",
        errors.BadRequest: "Moneybird refused the request as malformed",
        errors.Unprocessable: "Moneybird refused the data",
        errors.PaymentRequired: "the administration's plan does not include this",
        **(hints or {}),
    }
    hint = advice.get(type(exc), "try again later")
    return CommandError(f"{exc}\n{hint}")


_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: float | None = None) -> float:
    """``30m``, ``2h``, ``1d`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    match = _RELATIVE.match(value.strip().lower())
    if match:
        return (now or time.time()) - float(match[1]) * _UNITS[match[2]]
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--since takes 30m, 2h, 1d or an ISO time like 2026-05-01T12:00, not {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def utc_time(epoch: float) -> str:
    """A time as the commands show it: UTC, to the second."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def confirm(question: str, assume_yes: bool) -> bool:
    """Ask before a bulk change; ``--yes`` answers, and is required off a terminal."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise CommandError(f"{question} Not asking on a non-interactive input: add --yes.")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def each_push(
    verb: str,
    done: str,
    ids: Sequence[str],
    action: Callable[[str], object],
    refusals: type[Exception],
) -> int:
    """``action(event_id)`` for each of ``ids`` in order (a bulk replay or requeue), with
    progress (a bar on a terminal, :mod:`hookbird.progress`) when there are several: a
    push ``action`` refuses with ``refusals`` is reported as skipped and the rest go on.
    Returns how many were skipped."""
    skipped = 0
    with Progress(verb, len(ids), unit="pushes", enabled=len(ids) > 1) as progress:
        for event_id in ids:
            try:
                action(event_id)
            except refusals as exc:
                skipped += 1
                progress.say(f"skipped {exc}")
                progress.advance(failed=True)
            else:
                progress.item(f"{done} {event_id}")
                progress.advance()
    return skipped


def pick_one(group: str, choices: str) -> Any:
    """What a command group does without a sub-command: name the sub-commands."""

    def command(args: argparse.Namespace, settings: Settings) -> int:
        raise CommandError(f"choose one of: {choices} (hookbird {group} --help shows each)")

    return command


def add_filters(parser: argparse.ArgumentParser, *, handler: bool) -> None:
    """``--action``, ``--since`` and (``handler``) ``--handler``, to select stored pushes."""
    parser.add_argument("--action", help="an event name or event group, e.g. sales_invoice")
    if handler:
        parser.add_argument("--handler", help="only pushes this handler failed (module:function)")
    parser.add_argument("--since", type=parse_since, help="30m, 2h, 1d or an ISO time (UTC)")


STDIN = "-"


class SecretReader:
    """Reads one command's secrets: ``-`` takes the next line of stdin, in flag order."""

    def __init__(self) -> None:
        self._warned = False

    def read(self, value: str | None, flag: str, what: str, *, required: bool = True) -> str:
        """The secret for ``flag``: from stdin (``-``), the argument, or a prompt."""
        if value == STDIN:
            line = sys.stdin.readline()
            secret = line.rstrip("\r\n")
            if not secret:
                raise CommandError(f"{flag} -: expected {what} on a line of standard input")
            return secret
        if value is not None:
            self._warn(flag)
            return value
        if not required:
            return ""
        if not sys.stdin.isatty():
            raise CommandError(
                f"{what} is needed: pass {flag} - and write it to standard input "
                f"(e.g. printf '%s\\n' \"$VALUE\" | hookbird … {flag} -)"
            )
        secret = getpass.getpass(f"{what}: ")
        if not secret:
            raise CommandError(f"no {what} given")
        return secret

    def _warn(self, flag: str) -> None:
        if self._warned:
            return
        self._warned = True
        print(
            f"warning: {flag} on the command line is visible to other users (ps) and kept in "
            f"shell history; pass {flag} - and write it to standard input instead",
            file=sys.stderr,
        )
