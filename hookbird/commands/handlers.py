"""``hookbird handlers``: every installed handler, where it came from, what it matches."""

from __future__ import annotations

import argparse
import warnings
from typing import Any

from hookbird.commands.helpers import EXIT_OK, add_command, load_handlers
from hookbird.settings import Settings


def cmd_handlers(args: argparse.Namespace, settings: Settings) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        router = load_handlers(settings)
    for warning in caught:
        print(f"warning: {warning.message}")
    if args.event:
        found = router.handlers_for(args.event, args.entity_type)
        what = args.event + (f" [{args.entity_type}]" if args.entity_type else "")
        if not found:
            print(f"no handler would receive {what}")
            return EXIT_OK
        print(f"a push {what} reaches, in this order:")
        for handler in found:
            extra = " (latest only)" if handler.latest_only else ""
            if handler.batch:
                extra += f" (batch of up to {handler.batch}, {handler.window:g} s window)"
            print(f"  {handler.name}{extra}    from {router.sources.get(handler.name, '?')}")
        return EXIT_OK
    if not len(router):
        print(
            "no handlers installed. Install a plugin package (entry point group "
            "`hookbird.handlers`) or set HOOKBIRD_HANDLERS=your.module"
        )
        return EXIT_OK
    by_name: dict[str, list[str]] = {}
    for route in router:
        by_name.setdefault(route.name, []).append(route.describe())
    width = max(len(n) for n in by_name)
    for name, routes in by_name.items():
        print(f"{name:<{width}}  on {', '.join(routes)}")
        print(f"{'':<{width}}  from {router.sources.get(name, '?')}")
    return EXIT_OK


def register(commands: Any) -> None:
    handlers = add_command(
        commands,
        "handlers",
        "List every installed handler, where it came from and what it matches.",
        "hookbird handlers --event sales_invoice_state_changed_to_paid",
        cmd_handlers,
    )
    handlers.add_argument("--event", metavar="ACTION", help="show which handlers this push reaches")
    handlers.add_argument("--entity-type", help="with --event: the push's entity_type")
