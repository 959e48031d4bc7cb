"""``hookbird failed``: the dead letter, listed and requeued."""

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


def cmd_failed_list(args: argparse.Namespace, settings: Settings) -> int:
    from workers.admin import dead_letter

    conn = redis_client(settings)
    rows = dead_letter(
        conn, settings.queue, action=args.action, handler=args.handler, since=args.since
    )
    if not rows:
        print("the dead letter is empty" if not (args.action or args.handler) else "none match")
        return EXIT_OK
    for row in rows:
        entity = " ".join(p for p in (row.entity_type, row.entity_id) if p)
        when = utc_time(row.received_at)
        print(f"{row.event_id}  {when}  {row.action} {entity} adm {row.administration_id}")
        print(f"    {row.error or '(no reason recorded)'}")
    print(
        f"{len(rows)} in the dead letter; `hookbird failed requeue ID` or `--all` runs them again"
    )
    return EXIT_OK


def cmd_failed_requeue(args: argparse.Namespace, settings: Settings) -> int:
    from workers.admin import AdminError, dead_letter, requeue

    conn = redis_client(settings)
    if args.event_id:
        ids = [args.event_id]
    elif args.all or args.action or args.handler or args.since is not None:
        rows = dead_letter(
            conn, settings.queue, action=args.action, handler=args.handler, since=args.since
        )
        ids = [r.event_id for r in rows]
        if not ids:
            print("none match")
            return EXIT_OK
        what = plural(len(ids), "push", "pushes")
        if not confirm(f"requeue {what} from the dead letter?", args.yes):
            print("nothing requeued")
            return EXIT_OK
    else:
        raise CommandError("name an EVENT_ID, or choose with --all, --action, --handler, --since")
    failures = each_push(
        "requeue", "requeued", ids, lambda i: requeue(conn, settings.queue, i), AdminError
    )
    print(f"{len(ids) - failures} requeued")
    return EXIT_ERROR if failures and len(ids) == 1 else EXIT_OK


def register(commands: Any) -> None:
    failed = add_command(
        commands,
        "failed",
        "The dead letter: pushes a handler could not handle (RQ's failed registry).",
        "hookbird failed list --handler crm:sync_contact",
        pick_one("failed", "list, requeue"),
    )
    fsub = failed.add_subparsers(dest="failed_command", metavar="SUBCOMMAND")
    flist = add_command(
        fsub,
        "list",
        "List dead-lettered pushes with the reason.",
        "hookbird failed list",
        cmd_failed_list,
    )
    add_filters(flist, handler=True)
    freq = add_command(
        fsub,
        "requeue",
        "Run dead-lettered pushes again (only the handlers that failed).",
        "hookbird failed requeue --handler crm:sync_contact --yes",
        cmd_failed_requeue,
    )
    freq.add_argument("event_id", metavar="EVENT_ID", nargs="?")
    freq.add_argument("--all", action="store_true", help="every push in the dead letter")
    add_filters(freq, handler=True)
    freq.add_argument("--yes", action="store_true", help="do not ask before a bulk requeue")
