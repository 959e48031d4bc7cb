"""``hookbird doctor``: one line per check with ✓/⚠/✗ and what to do; exit 0/1/2."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hookbird.cli import add_command
from hookbird.doctor import ERROR, OK, WARN, Check, exit_code, run_checks
from hookbird.settings import Settings

MARKS = {OK: "✓", WARN: "⚠", ERROR: "✗"}
ASCII = {OK: "ok  ", WARN: "warn", ERROR: "FAIL"}


def line(check: Check, marks: dict[str, str]) -> str:
    advice = f"  → {check.advice}" if check.advice else ""
    return f"{marks[check.status]} {check.what}{advice}"


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    encoding = (sys.stdout.encoding or "").lower()
    marks = ASCII if args.ascii or "utf" not in encoding else MARKS
    checks = []
    for check in run_checks(settings):
        checks.append(check)
        if args.quiet and check.status == OK:
            continue
        print(line(check, marks), flush=True)
    code = exit_code(checks)
    warned = sum(c.status == WARN for c in checks)
    failed = sum(c.status == ERROR for c in checks)
    print(f"{len(checks)} checks: {failed} error(s), {warned} warning(s)")
    return code


def register(commands: Any) -> None:
    doctor = add_command(
        commands,
        "doctor",
        "Check Redis, the queue, the handlers, Moneybird credentials, webhooks and the "
        "clock; exit 0 (ok), 1 (warnings) or 2 (errors).",
        "REDIS_URL=redis://localhost:6379/0 hookbird doctor",
        cmd_doctor,
    )
    doctor.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    doctor.add_argument("--ascii", action="store_true", help="ok/warn/FAIL instead of ✓/⚠/✗")
