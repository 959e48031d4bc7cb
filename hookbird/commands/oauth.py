"""``hookbird oauth``: connect customer administrations by hand with OAuth.

``url`` prints the authorize URL for the configured application and scopes;
``exchange CODE`` trades the code the redirect received for a token pair and
stores it, encrypted, for every administration the token can see; ``add-token``
stores a personal token for one administration instead; ``list`` shows which
administrations have stored credentials. A SaaS does the same from its own
web app with :mod:`hookbird.moneybird.oauth`.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from typing import Any

import httpx2

from hookbird.cli import EXIT_OK, CommandError, add_command, redis_client
from hookbird.commands.webhooks import explain
from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import Credential, CredentialError, CredentialStore, fernet
from hookbird.moneybird.oauth import OAuthApp, exchange, oauth_app
from hookbird.settings import Settings


def _app(settings: Settings) -> OAuthApp:
    try:
        app = oauth_app(settings)
    except ValueError as exc:
        raise CommandError(f"MONEYBIRD_OAUTH_SCOPES: {exc}") from None
    if app is None:
        raise CommandError(
            "no OAuth application configured: register one at "
            "https://moneybird.com/user/applications/new, then set MONEYBIRD_OAUTH_CLIENT_ID, "
            "MONEYBIRD_OAUTH_CLIENT_SECRET and MONEYBIRD_OAUTH_REDIRECT_URI"
        )
    return app


def cmd_url(args: argparse.Namespace, settings: Settings) -> int:
    app = _app(settings)
    state = args.state or secrets.token_urlsafe(16)
    print(app.authorize_url(state=state))
    print(
        f"scopes: {' '.join(app.scopes)}; state: {state} (check it on the redirect)",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_exchange(args: argparse.Namespace, settings: Settings) -> int:
    app = _app(settings)
    try:
        fernet(settings.secret_key)  # before spending the single-use code
    except CredentialError as exc:
        raise CommandError(str(exc)) from None
    store = CredentialStore(redis_client(settings), settings.secret_key)
    try:
        with httpx2.Client(timeout=settings.api_timeout) as http:
            credential = exchange(app, args.code, http)
        with Client(settings, token=credential.access_token, on_budget="wait") as client:
            found = client.administrations()
    except errors.MoneybirdError as exc:
        raise explain(exc) from None
    if not found:
        raise CommandError("the token works but sees no administration; nothing stored")
    for administration in found:
        store.put(str(administration["id"]), credential)
        print(f"connected administration {administration['id']} ({administration.get('name')})")
    return EXIT_OK


def cmd_add_token(args: argparse.Namespace, settings: Settings) -> int:
    token = sys.stdin.readline().strip() if args.stdin else getpass.getpass("personal token: ")
    if not token:
        raise CommandError("no token given")
    try:
        fernet(settings.secret_key)  # fails early, saying how to make a key
        store = CredentialStore(redis_client(settings), settings.secret_key)
        with Client(settings, token=token, on_budget="wait") as client:
            client.administration(args.administration).request("GET", "/contacts/synchronization")
        store.put(args.administration, Credential(token, kind="personal"))
    except (errors.MoneybirdError, CredentialError) as exc:
        raise explain(exc) from None
    print(f"stored a personal token for administration {args.administration}")
    return EXIT_OK


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    store = CredentialStore(redis_client(settings), settings.secret_key)
    ids = store.administrations()
    if not ids:
        print("no stored credentials (connect with `hookbird oauth url` + `exchange CODE`)")
        return EXIT_OK
    for administration in ids:
        try:
            credential = store.get(administration)
        except CredentialError as exc:
            raise CommandError(str(exc)) from None
        if credential is None:
            continue
        expiry = f"expires at {credential.expires_at:.0f}" if credential.expires_at else "no expiry"
        print(
            f"{administration:<20} {credential.kind:<9} {' '.join(credential.scopes):<30} {expiry}"
        )
    return EXIT_OK


def register(commands: Any) -> None:
    oauth = add_command(
        commands,
        "oauth",
        "Connect Moneybird administrations with OAuth (authorize URL, code exchange).",
        "hookbird oauth url",
        None,
    )
    actions = oauth.add_subparsers(dest="oauth_command", metavar="ACTION", required=True)
    url = add_command(
        actions,
        "url",
        "Print the URL where a customer grants hookbird access (scopes from "
        "MONEYBIRD_OAUTH_SCOPES).",
        "MONEYBIRD_OAUTH_SCOPES=sales_invoices,settings hookbird oauth url",
        cmd_url,
    )
    url.add_argument("--state", help="state to round-trip (default: a random one)")
    code = add_command(
        actions,
        "exchange",
        "Trade the code from the redirect for tokens and store them encrypted.",
        "hookbird oauth exchange 4f1c…",
        cmd_exchange,
    )
    code.add_argument("code", help="the ?code= value the redirect URI received")
    token = add_command(
        actions,
        "add-token",
        "Store a personal API token for one administration (checked, then encrypted).",
        "printf '%s\\n' \"$TOKEN\" | hookbird oauth add-token --administration 1234 --stdin",
        cmd_add_token,
    )
    token.add_argument("--administration", required=True, help="administration id")
    token.add_argument("--stdin", action="store_true", help="read the token from stdin")
    add_command(
        actions,
        "list",
        "List administrations with stored credentials.",
        "hookbird oauth list",
        cmd_list,
    )
