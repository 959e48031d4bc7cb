"""``hookbird config``: the configuration in effect, secrets shown only as set."""

from __future__ import annotations

import argparse
from typing import Any

from hookbird.commands.helpers import EXIT_OK, add_command, safe_url
from hookbird.devstate import from_dev
from hookbird.settings import FIELDS, Settings


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    dev = from_dev(settings)
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
        if setting.attr in dev:
            shown += f"  (from the `hookbird dev` running here, pid {dev[setting.attr]})"
        print(f"{setting.env:<32} {shown}")
    return EXIT_OK


def register(commands: Any) -> None:
    add_command(
        commands,
        "config",
        "Show the configuration in effect (secrets only as set; values a running "
        "`hookbird dev` supplies are marked).",
        "hookbird config",
        cmd_config,
    )
