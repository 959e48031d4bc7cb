"""``hookbird oauth``: connect customer administrations by hand with OAuth.

``url`` prints the authorize URL for the configured application and scopes;
``exchange CODE`` trades the code the redirect received for a token pair and
stores it, encrypted, for every administration the token can see; ``list`` shows
which administrations have stored credentials. A SaaS does the same from its own
web app with :mod:`hookbird.moneybird.oauth`.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any

import httpx2

from hookbird.cli import EXIT_OK, CommandError, add_command, redis_client
from hookbird.commands.webhooks import explain
from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import CredentialError, CredentialStore, fernet
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
    add_command(
        actions,
        "list",
        "List administrations with stored credentials.",
        "hookbird oauth list",
        cmd_list,
    )
