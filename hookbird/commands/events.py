"""``hookbird events``: list, show and replay stored pushes."""

from __future__ import annotations

import argparse
from typing import Any

from hookbird.commands.helpers import (
    EXIT_ERROR,
    EXIT_OK,
    CommandError,
    add_command,
    add_filters,
    confirm,
    each_push,
    pick_one,
    redis_client,
    utc_time,
)
from hookbird.settings import Settings
from hookbird.wording import plural


def cmd_events_list(args: argparse.Namespace, settings: Settings) -> int:
    from workers.admin import iter_events

    conn = redis_client(settings)
    rows = list(
        iter_events(
            conn,
            action=args.action,
            administration=args.administration,
            status=args.status,
            since=args.since,
            limit=args.limit,
        )
    )
    if not rows:
        print("no stored pushes match")
        return EXIT_OK
    print(f"{'received (UTC)':<19}  {'event id':<28}  {'status':<10}  push")
    for row in rows:
        entity = " ".join(p for p in (row.entity_type, row.entity_id) if p)
        print(
            f"{utc_time(row.received_at):<19}  {row.event_id:<28}  {row.status:<10}  "
            f"{row.action} {entity} adm {row.administration_id}"
        )
    return EXIT_OK


def cmd_events_show(args: argparse.Namespace, settings: Settings) -> int:
    from workers.admin import get_event, pretty_json, raw_push

    conn = redis_client(settings)
    row = get_event(conn, args.event_id)
    if row is None:
        raise CommandError(
            f"no stored push {args.event_id} (expired after HOOKBIRD_EVENT_RETENTION, or a typo); "
            "`hookbird events list` shows what is stored"
        )
    push = raw_push(conn, args.event_id)
    print(f"event {row.event_id}  status {row.status}  received {utc_time(row.received_at)} UTC")
    for name, value in sorted(push["meta"].items()):
        print(f"  {name}: {value}")
    print(pretty_json(push["body"]))
    if not row.handlers:
        print("handlers: none has run yet")
    for name, record in row.handlers.items():
        print(f"handler {name}: {record.get('status')}, attempts {record.get('attempts', 0)}")
        if record.get("batch"):
            print(f"  batch: ran in one call with {record['batch']} events")
        for key in ("reason", "error"):
            if record.get(key):
                print(f"  {key}: {record[key]}")
        if record.get("traceback") and args.traceback:
            print("  " + str(record["traceback"]).replace("\n", "\n  "))
        elif record.get("traceback"):
            print(f"  traceback: recorded; `hookbird events show {row.event_id} --traceback`")
    if row.error:
        print(f"last error: {row.error}")
    return EXIT_OK


def cmd_events_replay(args: argparse.Namespace, settings: Settings) -> int:
    from workers.admin import AdminError, iter_events, replay

    conn = redis_client(settings)
    if args.event_id:
        ids = [args.event_id]
    elif args.since is not None or args.action:
        ids = [r.event_id for r in iter_events(conn, action=args.action, since=args.since)]
        if not ids:
            print("no stored pushes match")
            return EXIT_OK
        what = plural(len(ids), "stored push", "stored pushes")
        if not confirm(f"replay {what} through every handler?", args.yes):
            print("nothing replayed")
            return EXIT_OK
    else:
        raise CommandError("name an EVENT_ID, or select pushes with --since and/or --action")
    oldest_first = ids[::-1]  # so entities keep their order
    failures = each_push(
        "replay", "queued", oldest_first, lambda i: replay(conn, settings.queue, i), AdminError
    )
    return EXIT_ERROR if failures and len(ids) == 1 else EXIT_OK


def register(commands: Any) -> None:
    events = add_command(
        commands,
        "events",
        "The event log: list, show or replay stored pushes.",
        "hookbird events list --action sales_invoice --since 1d",
        pick_one("events", "list, show, replay"),
    )
    sub = events.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    listing = add_command(
        sub,
        "list",
        "List stored pushes, newest first.",
        "hookbird events list --status dead",
        cmd_events_list,
    )
    add_filters(listing, handler=False)
    listing.add_argument("--administration", help="administration id")
    listing.add_argument(
        "--status", help="queued, running, waiting, retrying, succeeded, dead or expired"
    )
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    show = add_command(
        sub,
        "show",
        "Show one push (secrets blanked) and each handler's outcome, attempts and last "
        "error; --traceback adds the Python traceback of each failed handler.",
        "hookbird events show 018f3a2b4c5d9e8f7a6b5c4d3e2f1a0b",
        cmd_events_show,
    )
    show.add_argument("event_id", metavar="EVENT_ID")
    show.add_argument(
        "--traceback",
        action="store_true",
        help="print each failed handler's last traceback (events show says when one is recorded)",
    )
    rep = add_command(
        sub,
        "replay",
        "Run stored pushes through every handler again, on purpose (past the dedup key).",
        "hookbird events replay --action contact --since 2h --yes",
        cmd_events_replay,
    )
    rep.add_argument("event_id", metavar="EVENT_ID", nargs="?")
    add_filters(rep, handler=False)
    rep.add_argument("--yes", action="store_true", help="do not ask before a bulk replay")
