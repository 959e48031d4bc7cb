"""``hookbird webhooks``: Moneybird's webhooks and the subscription store, kept in step.

``register`` creates a webhook through the API and writes its id, token and secret
to the subscription store, so the receiver accepts its pushes at once. ``list``
shows Moneybird's view merged with the store (with ``last_http_status``);
``delete``, ``activate`` and ``deactivate`` call the API, then update the store.
Without Moneybird credentials (or with ``--local``) they touch the store only.
``add`` writes a store entry by hand, for webhooks registered elsewhere; it reads the
token and secrets from stdin or a prompt (:mod:`hookbird.commands.secret_input`).
Signing secrets are stored encrypted with ``HOOKBIRD_SECRET_KEY``; ``encrypt`` seals
those an older version stored in plaintext, and re-encrypts the rest after a rotation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis

from hookbird import catalog, crypto, metrics
from hookbird.commands.helpers import (
    EXIT_OK,
    Command,
    CommandError,
    SecretReader,
    add_command,
    explain,
    redis_client,
)
from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import CredentialError, CredentialStore
from hookbird.moneybird.oauth import StoredTokens
from hookbird.settings import Settings
from hookbird.subscriptions import SIGNING_SECRETS, SubscriptionStore
from hookbird.wording import plural


def api_client(settings: Settings, client: redis.Redis) -> Client | None:
    """A CLI client (waits for budget and says so), or None when no credentials exist."""
    stored = settings.secret_key and CredentialStore(client, settings.secret_key).administrations()
    if not settings.moneybird_api_token and not stored:
        return None

    def tell(seconds: float) -> None:
        print(f"Moneybird rate budget spent: waiting {seconds:.0f} s …", file=sys.stderr)

    return Client(settings, redis=client, on_budget="wait", on_wait=tell)


def check_events(names: list[str]) -> None:
    """Warn about names that are neither official events nor event groups."""
    for name in names:
        if not catalog.is_known(name):
            close = catalog.suggest(name)
            also = f"; did you mean {', '.join(close)}?" if close else ""
            print(
                f"warning: {name!r} is not a Moneybird event or event group{also}", file=sys.stderr
            )


def cmd_register(args: argparse.Namespace, settings: Settings) -> int:
    rc = redis_client(settings)
    client = api_client(settings, rc)
    if client is None:
        raise CommandError(
            "no Moneybird credentials: set MONEYBIRD_API_TOKEN (a token with the "
            "`settings` scope) or connect with `hookbird oauth exchange`"
        )
    with client:  # its HTTP connections are closed when the command ends
        try:  # Moneybird shows the signing secret only once: be able to store it first
            crypto.fernet(settings.secret_key, SIGNING_SECRETS)
        except crypto.SecretKeyError as exc:
            raise CommandError(str(exc)) from None
        events = [e.strip() for e in (args.events or "").split(",") if e.strip()]
        check_events(events)
        host = urlsplit(args.url).hostname or ""
        if args.url.startswith("http://") and host not in ("localhost", "127.0.0.1", "::1"):
            print(
                "warning: the URL is plain http; pushes carry invoices and contacts, so "
                "Moneybird recommends https",
                file=sys.stderr,
            )
        try:
            hook = client.administration(args.administration).webhooks.create(args.url, events)
        except (errors.MoneybirdError, CredentialError) as exc:
            raise explain(exc) from None
        webhook_id, secret = str(hook["id"]), str(hook.get("secret") or "")
        try:
            SubscriptionStore(rc, settings.secret_key).add(
                webhook_id=webhook_id,
                administration_id=args.administration,
                token=str(hook["token"]),
                secrets=(secret,) if secret else (),
                url=args.url,
                events=tuple(events),
            )
        except (redis.exceptions.RedisError, crypto.SecretKeyError) as exc:
            client.administration(args.administration).webhooks.delete(webhook_id)
            raise CommandError(
                f"could not store the webhook ({exc}); removed it from Moneybird "
                "again, so nothing is left half-registered"
            ) from None
        status = hook.get("last_http_status")
        print(webhook_id)
        print(
            f"registered webhook {webhook_id} for administration {args.administration} "
            f"({len(events) or 'all'} events; test push answered {status})",
            file=sys.stderr,
        )
        return EXIT_OK


def _administrations(
    args: argparse.Namespace, store: SubscriptionStore, client: Client
) -> list[str]:
    if getattr(args, "administration", None):
        return [args.administration]
    found = {s.administration_id for s in store.list(decrypt=False)}
    if isinstance(client.tokens, StoredTokens):  # administrations connected with OAuth
        found |= set(client.tokens.store.administrations())
    if not found and client.tokens is not None and client.settings.moneybird_api_token:
        found = {str(a["id"]) for a in client.administrations()}
    return sorted(found)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    rc = redis_client(settings)
    store = SubscriptionStore(rc)
    local = {s.webhook_id: s for s in store.list(decrypt=False)}
    client = None if args.local else api_client(settings, rc)
    remote: dict[str, dict[str, Any]] = {}
    if client is not None:
        try:
            for administration in _administrations(args, store, client):
                for item in client.administration(administration).webhooks.list():
                    remote[str(item["id"])] = {**item, "administration_id": administration}
        except (errors.MoneybirdError, CredentialError) as exc:
            raise explain(exc) from None
        finally:
            client.close()
        metrics.record_webhooks(rc, remote.values())  # for hookbird_webhook_* on /metrics
    elif not args.local:
        print("(no Moneybird credentials: showing the local store only)", file=sys.stderr)
    if not local and not remote:
        print("no webhooks (register one with `hookbird webhooks register`)")
        return EXIT_OK
    print(
        f"{'WEBHOOK':<20} {'ADMINISTRATION':<20} {'MONEYBIRD':<10} {'LOCAL':<9} "
        f"{'LAST_HTTP':<9} {'SIGNED':<6} URL"
    )
    for webhook_id in sorted(set(local) | set(remote)):
        sub, hook = local.get(webhook_id), remote.get(webhook_id)
        administration = (
            sub.administration_id if sub else str(hook["administration_id"]) if hook else ""
        )
        if hook is not None:
            state = "inactive" if hook.get("deactivated_at") else "active"
        else:
            state = "-" if client is None else "missing"
        here = ("enabled" if sub.enabled else "disabled") if sub else "missing"
        last = str(hook.get("last_http_status") or "-") if hook else "-"
        signed = "yes" if sub and sub.signed else "no"
        url = (hook or {}).get("url") or (sub.url if sub else "")
        print(
            f"{webhook_id:<20} {administration:<20} {state:<10} {here:<9} {last:<9} "
            f"{signed:<6} {url}"
        )
    return EXIT_OK


def _remote(
    args: argparse.Namespace, settings: Settings, call: Callable[[Any, str], None], done: str
) -> tuple[SubscriptionStore, bool]:
    """Apply ``call(webhooks, id)`` through the API when possible; the store and whether it did."""
    rc = redis_client(settings)
    store = SubscriptionStore(rc)
    client = None if args.local else api_client(settings, rc)
    if client is None:
        if not args.local:
            print("(no Moneybird credentials: changing the local store only)", file=sys.stderr)
        return store, False
    sub = store.get(args.webhook_id, decrypt=False)
    administration = args.administration or (sub.administration_id if sub else None)
    if not administration:
        client.close()
        raise CommandError(
            f"webhook {args.webhook_id} is not in the subscription store; "
            "pass --administration ID so hookbird knows where it lives"
        )
    try:
        call(client.administration(administration).webhooks, args.webhook_id)
    except errors.NotFound:
        if sub is None:
            raise CommandError(
                f"webhook {args.webhook_id} exists neither in administration "
                f"{administration} nor in the subscription store"
            ) from None
        print(f"webhook {args.webhook_id} is not in Moneybird (any more)", file=sys.stderr)
        return store, False
    except (errors.MoneybirdError, CredentialError) as exc:
        raise explain(exc) from None
    finally:
        client.close()
    print(f"webhook {args.webhook_id} {done} in Moneybird")
    return store, True


def _set_enabled(enabled: bool) -> Command:
    def command(args: argparse.Namespace, settings: Settings) -> int:
        verb = "activated" if enabled else "deactivated"
        store, remote = _remote(
            args,
            settings,
            (lambda hooks, i: hooks.activate(i))
            if enabled
            else (lambda hooks, i: hooks.deactivate(i)),
            verb,
        )
        if store.set_enabled(args.webhook_id, enabled):
            print(f"webhook {args.webhook_id} {verb} in the subscription store")
        elif not remote:
            raise CommandError(f"webhook {args.webhook_id} is not in the subscription store")
        return EXIT_OK

    return command


def cmd_delete(args: argparse.Namespace, settings: Settings) -> int:
    store, remote = _remote(args, settings, lambda hooks, i: hooks.delete(i), "deleted")
    metrics.forget_webhook(store.redis, args.webhook_id)
    if store.delete(args.webhook_id):
        print(f"webhook {args.webhook_id} removed from the subscription store")
    elif not remote:
        raise CommandError(f"webhook {args.webhook_id} is not in the subscription store")
    return EXIT_OK


def cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    reader = SecretReader()
    token = reader.read(args.token, "--token", "the webhook's token")
    webhook_secrets = tuple(
        s for s in (reader.read(v, "--secret", "a signing secret") for v in args.secret or []) if s
    )
    try:
        SubscriptionStore(redis_client(settings), settings.secret_key).add(
            webhook_id=args.webhook_id,
            administration_id=args.administration,
            token=token,
            secrets=webhook_secrets,
            url=args.url or "",
            enabled=not args.disabled,
        )
    except crypto.SecretKeyError as exc:
        raise CommandError(str(exc)) from None
    signed = "signature required" if webhook_secrets else "no signing secret: token only"
    print(f"added webhook {args.webhook_id} for administration {args.administration} ({signed})")
    return EXIT_OK


def cmd_encrypt(args: argparse.Namespace, settings: Settings) -> int:
    store = SubscriptionStore(redis_client(settings), settings.secret_key)
    try:
        count = store.encrypt()
    except crypto.SecretKeyError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"signing secrets of {plural(count, 'webhook')} encrypted with the first "
        "HOOKBIRD_SECRET_KEY"
    )
    return EXIT_OK


def register(commands: Any) -> None:
    webhooks = add_command(
        commands,
        "webhooks",
        "Register and manage the Moneybird webhooks hookbird receives.",
        "hookbird webhooks register --administration 1234 --url https://hooks.example/webhooks/"
        "moneybird --events sales_invoice_state_changed,contact",
        None,
    )
    actions = webhooks.add_subparsers(dest="webhooks_command", metavar="ACTION", required=True)

    reg = add_command(
        actions,
        "register",
        "Create a webhook in Moneybird and store its token and secret; prints its id.",
        "hookbird webhooks register --administration 1234 --url https://hooks.example/webhooks/"
        "moneybird --events sales_invoice_state_changed_to_paid,contact_created",
        cmd_register,
    )
    reg.add_argument("--administration", required=True, help="administration id")
    reg.add_argument("--url", required=True, help="public URL of hookbird's /webhooks/moneybird")
    reg.add_argument("--events", help="comma-separated events or event groups (default: all)")

    add = add_command(
        actions,
        "add",
        "Add a webhook to the subscription store without calling Moneybird. `-` reads a "
        "value from stdin, one line each (token first); without --token it is prompted for.",
        'printf \'%s\\n%s\\n\' "$TOKEN" "$SECRET" | hookbird webhooks add --webhook-id 4180 '
        "--administration 1234 --token - --secret -",
        cmd_add,
    )
    add.add_argument("--webhook-id", required=True, help="Moneybird's id of the webhook")
    add.add_argument("--administration", required=True, help="administration id it belongs to")
    add.add_argument(
        "--token",
        help="the webhook's token (pushes carry it): - reads it from stdin (a value here is "
        "visible in ps); omitted: prompted for",
    )
    add.add_argument(
        "--secret",
        action="append",
        help="signing secret, - for stdin; repeat during rotation. Set: signatures required",
    )
    add.add_argument("--url", help="the URL Moneybird posts to (for your reference)")
    add.add_argument("--disabled", action="store_true", help="add it disabled")

    add_command(
        actions,
        "encrypt",
        "Encrypt the stored signing secrets with the first key in HOOKBIRD_SECRET_KEY: "
        "plaintext ones from older versions, and the rest after a key rotation.",
        "HOOKBIRD_SECRET_KEY=new-key,old-key hookbird webhooks encrypt",
        cmd_encrypt,
    )

    listing = add_command(
        actions,
        "list",
        "List webhooks: Moneybird's view (with last_http_status) merged with the store.",
        "hookbird webhooks list --administration 1234",
        cmd_list,
    )
    listing.add_argument("--administration", help="only this administration")
    listing.add_argument("--local", action="store_true", help="the subscription store only")

    for name, func, what in (
        ("activate", _set_enabled(True), "Activate a webhook in Moneybird and the store."),
        (
            "deactivate",
            _set_enabled(False),
            "Deactivate a webhook in Moneybird and the store (pushes refused with 401).",
        ),
        ("delete", cmd_delete, "Delete a webhook in Moneybird and remove it from the store."),
    ):
        sub = add_command(actions, name, what, f"hookbird webhooks {name} 4180", func)
        sub.add_argument("webhook_id")
        sub.add_argument("--administration", help="needed when the webhook is not in the store")
        sub.add_argument("--local", action="store_true", help="change the store only")
