"""``hookbird reconcile``: find what Moneybird has that hookbird missed, and queue it.

The work is :class:`workers.reconcile.Reconciler`'s; this module picks the resources,
builds the API client (it waits for the rate budget and says so), draws the progress
of a backfill, prints the summary and turns Moneybird's errors into what to do next.
Its run and what it found are counted for ``/metrics`` (trigger ``cli``) and written to
Redis before the command exits: a CLI process has no liveness beat to carry them.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from hookbird import metrics
from hookbird.commands.helpers import (
    EXIT_OK,
    CommandError,
    add_command,
    explain,
    load_handlers,
    redis_client,
)
from hookbird.moneybird import errors
from hookbird.settings import Settings
from hookbird.versions import RESOURCES
from hookbird.wording import plural


class Bar:
    """A backfill's progress: a bar redrawn in place on a terminal, plain lines otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown: tuple[str, int] | None = None

    def __call__(self, resource: str, done: int, total: int) -> None:
        if self.tty:
            width = 30
            filled = width * done // max(total, 1)
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{resource:<36} [{bar}] {done}/{total}{end}")
        else:
            step = max(total // 10, 100)  # about ten lines a resource
            if done < total and self.shown == (resource, done // step):
                return
            self.shown = (resource, done // step)
            self.stream.write(f"{resource}: {done}/{total} records fetched\n")
        self.stream.flush()


def _resources(args: argparse.Namespace, settings: Settings) -> list[str]:
    if args.resources:
        wanted = [r.strip().strip("/") for r in args.resources.split(",") if r.strip()]
        unknown = [r for r in wanted if r not in RESOURCES]
        if unknown:
            raise CommandError(
                f"not a synchronizable resource: {', '.join(unknown)}\n"
                f"choose from: {', '.join(RESOURCES)}"
            )
        return wanted
    from workers.reconcile import matched

    found = matched(load_handlers(settings))
    if not found:
        raise CommandError(
            "no installed handler matches an event of a synchronizable resource, so there is "
            "nothing to reconcile for them (`hookbird handlers` lists the routes); name the "
            f"resources with --resources, from: {', '.join(RESOURCES)}"
        )
    return found


def cmd_reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from hookbird.commands.webhooks import api_client
    from workers.reconcile import Reconciler

    resources = _resources(args, settings)
    conn = redis_client(settings)
    client = api_client(settings, conn)
    if client is None:
        raise CommandError(
            "no Moneybird credentials: set MONEYBIRD_API_TOKEN, or connect the "
            "administration with `hookbird oauth url`"
        )
    with client:
        reconciler = Reconciler(
            conn,
            client.administration(args.administration),
            queue=settings.queue,
            retention=settings.event_retention,
            dedup_ttl=settings.dedup_ttl,
            progress=Bar() if args.backfill else None,
        )
        outcome = "failed"
        try:
            tallies = reconciler.run(resources, backfill=args.backfill)
            outcome = "ok"
        except errors.Forbidden as exc:
            raise CommandError(
                f"{exc}\nthe token lacks the scope one of these resources needs (contacts: "
                "any; sales_invoices and external_sales_invoices: sales_invoices; estimates: "
                "estimates; documents/…: documents); grant it, or leave the resource out "
                "with --resources"
            ) from None
        except errors.MoneybirdError as exc:
            error = explain(exc)
            raise CommandError(
                f"{error}\nWhat was queued before this stays queued; run the same command "
                "again to go on (nothing is queued twice)."
            ) from None
        finally:
            metrics.TALLY.reconcile_run("cli", outcome)
            metrics.flush(conn)
    print(f"{'resource':<36} {'seen':>7} {'new':>6} {'changed':>7} {'gone':>5} {'calls':>5}")
    for t in tallies:
        print(f"{t.resource:<36} {t.seen:>7} {t.new:>6} {t.changed:>7} {t.gone:>5} {t.calls:>5}")
        if t.baseline:
            print("  first reconciliation here: baseline recorded, nothing queued")
        if t.note:
            print(f"  {t.note}")
    queued = sum(t.queued for t in tallies)
    print(f"queued {plural(queued, 'event')} for the workers (queue {settings.queue})")
    return EXIT_OK


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "reconcile",
        "Compare an administration's records with the versions hookbird has seen, through "
        "Moneybird's synchronization API, and queue an event for each new, changed or "
        "deleted record (the first run records a baseline and queues nothing).",
        "hookbird reconcile --administration 123456789 --resources contacts,sales_invoices\n"
        "  hookbird reconcile --administration 123456789 --backfill   # the initial import",
        cmd_reconcile,
    )
    parser.add_argument("--administration", required=True, help="the administration id")
    parser.add_argument(
        "--resources",
        help="comma-separated API paths (default: every synchronizable resource an installed "
        f"route can match): {', '.join(RESOURCES)}",
    )
    parser.add_argument(
        "--backfill",
        action="store_true",
        help="queue an event for every record, not only for differences (an initial import)",
    )
