"""``hookbird webhooks``: the subscription store of webhooks hookbird accepts pushes for."""

from __future__ import annotations

import argparse
from typing import Any

from hookbird.cli import EXIT_OK, Command, CommandError, add_command, redis_client
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    webhook_secrets = tuple(s for s in (args.secret or []) if s)
    SubscriptionStore(redis_client(settings)).add(
        webhook_id=args.webhook_id,
        administration_id=args.administration,
        token=args.token,
        secrets=webhook_secrets,
        url=args.url or "",
        enabled=not args.disabled,
    )
    signed = "signature required" if webhook_secrets else "no signing secret: token only"
    print(f"added webhook {args.webhook_id} for administration {args.administration} ({signed})")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    subscriptions = SubscriptionStore(redis_client(settings)).list()
    if not subscriptions:
        print("no webhooks in the subscription store (add one with `hookbird webhooks add`)")
        return EXIT_OK
    print(f"{'WEBHOOK':<20} {'ADMINISTRATION':<20} {'ENABLED':<8} {'SIGNED':<7} URL")
    for s in subscriptions:
        enabled, signed = ("yes" if s.enabled else "no"), ("yes" if s.secrets else "no")
        print(f"{s.webhook_id:<20} {s.administration_id:<20} {enabled:<8} {signed:<7} {s.url}")
    return EXIT_OK


def _set_enabled(enabled: bool) -> Command:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        if not SubscriptionStore(redis_client(settings)).set_enabled(args.webhook_id, enabled):
            raise CommandError(f"webhook {args.webhook_id} is not in the subscription store")
        print(f"webhook {args.webhook_id} {'activated' if enabled else 'deactivated'}")
        return EXIT_OK

    return command


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    if not SubscriptionStore(redis_client(settings)).delete(args.webhook_id):
        raise CommandError(f"webhook {args.webhook_id} is not in the subscription store")
    print(f"webhook {args.webhook_id} removed from the subscription store")
    return EXIT_OK


def register(commands: Any) -> None:
    webhooks = add_command(
        commands,
        "webhooks",
        "Manage the webhooks hookbird accepts pushes for.",
        "hookbird webhooks add --webhook-id 123 --administration 456 --token T",
        None,
    )
    actions = webhooks.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)

    add = add_command(
        actions,
        "add",
        "Add a webhook to the subscription store without calling Moneybird.",
        'hookbird webhooks add --webhook-id 4180 --administration 1234 --token "$TOKEN" '
        '--secret "$SECRET"',
        cmd_add,
    )
    add.add_argument("--webhook-id", required=True, help="Moneybird's id of the webhook")
    add.add_argument("--administration", required=True, help="administration id it belongs to")
    add.add_argument("--token", required=True, help="the webhook's token (pushes carry it)")
    add.add_argument(
        "--secret",
        action="append",
        help="signing secret; repeat during rotation. Set: signatures required",
    )
    add.add_argument("--url", help="the URL Moneybird posts to (for your reference)")
    add.add_argument("--disabled", action="store_true", help="add it disabled")

    add_command(
        actions,
        "list",
        "List the webhooks in the subscription store.",
        "hookbird webhooks list",
        cmd_list,
    )
    for name, enabled in (("activate", True), ("deactivate", False)):
        effect = "pushes accepted" if enabled else "pushes refused with 401"
        sub = add_command(
            actions,
            name,
            f"{name.capitalize()} a stored webhook ({effect}).",
            f"hookbird webhooks {name} 4180",
            _set_enabled(enabled),
        )
        sub.add_argument("webhook_id")
    delete = add_command(
        actions,
        "delete",
        "Remove a webhook from the subscription store.",
        "hookbird webhooks delete 4180",
        cmd_delete,
    )
    delete.add_argument("webhook_id")
