"""``hookbird config``: the configuration in effect, secrets shown only as set."""

from __future__ import annotations

import argparse
from typing import Any

from hookbird.cli import EXIT_OK, add_command, safe_url
from hookbird.settings import FIELDS, Settings


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    for setting in FIELDS:
        value = getattr(settings, setting.attr)
        if isinstance(value, tuple):
            value = ",".join(value)
        if value in (None, ""):
            shown = "(unset)"
        elif setting.secret:
            shown = "(set)"
        elif setting.attr == "redis_url":
            shown = safe_url(str(value))
        else:
            shown = str(value)
        print(f"{setting.env:<32} {shown}")
    return EXIT_OK


def register(commands: Any) -> None:
    add_command(
        commands,
        "config",
        "Show the configuration in effect (secrets only as set).",
        "hookbird config",
        cmd_config,
    )
