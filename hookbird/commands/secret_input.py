"""Secrets a command needs, read where other users cannot see them.

Anything on the command line shows in ``ps`` for every user of the machine and stays
in shell history. Commands that take a token, a signing secret or an OAuth code
therefore read it from standard input (the flag's value ``-``) or, with the flag left
out, from a prompt that does not echo (only on a terminal). A value given on the
command line still works, with one warning saying why it should not be.
"""

from __future__ import annotations

import getpass
import sys

from hookbird.cli import CommandError

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
