"""``hookbird oauth``: connect customer administrations by hand with OAuth.

``url`` prints the authorize URL for the configured application and scopes, with
a fresh ``state``; ``exchange`` reads the code (or the whole redirect URL, whose state
it then checks) from stdin or a prompt, trades it for a token pair and stores it,
encrypted, as one grant that every administration the token can see points to;
``add-token`` stores a personal token for one administration instead; ``list`` shows
which administrations have stored credentials and which grants need re-authorisation;
``rotate-key`` re-encrypts them all with the first ``HOOKBIRD_SECRET_KEY``. A SaaS does
the same from its own web app with :mod:`hookbird.moneybird.oauth`.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from hookbird.commands.helpers import (
    EXIT_OK,
    CommandError,
    SecretReader,
    add_command,
    explain,
    redis_client,
)
from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import Credential, CredentialError, CredentialStore, fernet
from hookbird.moneybird.oauth import (
    OAuthApp,
    StateMismatch,
    exchange,
    oauth_app,
    verify_state,
)
from hookbird.settings import Settings
from hookbird.wording import plural


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
    url, state = app.authorize_url(state=args.state)
    print(url)
    print(
        f"scopes: {' '.join(app.scopes)}; state: {state} (check it on the redirect)",
        file=sys.stderr,
    )
    return EXIT_OK


def code_from(given: str, expected_state: str | None) -> str:
    """The authorization code in ``given``: a bare code, or the redirect URL carrying it.

    With ``expected_state`` the input must be the redirect URL and its state must match.
    """
    if "code=" not in given:
        if expected_state:
            raise CommandError("--state needs the whole redirect URL (with ?code=…&state=…)")
        return given
    query = parse_qs(urlsplit(given).query or given.partition("?")[2] or given)
    if "error" in query:
        raise CommandError(f"the customer did not grant access: {query['error'][0]}")
    if expected_state:
        try:
            verify_state(expected_state, (query.get("state") or [""])[0])
        except StateMismatch as exc:
            raise CommandError(str(exc)) from None
    code = (query.get("code") or [""])[0]
    if not code:
        raise CommandError("no code in the redirect URL")
    return code


def cmd_exchange(args: argparse.Namespace, settings: Settings) -> int:
    app = _app(settings)
    try:
        fernet(settings.secret_key)  # before spending the single-use code
    except CredentialError as exc:
        raise CommandError(str(exc)) from None
    given = SecretReader().read(args.code, "CODE", "the code (or redirect URL)")
    code = code_from(given.strip(), args.state)
    store = CredentialStore(redis_client(settings), settings.secret_key)
    try:
        with httpx2.Client(timeout=settings.api_timeout) as http:
            credential = exchange(app, code, http)
        with Client(settings, token=credential.access_token, on_budget="wait") as client:
            found = client.administrations()
    except errors.MoneybirdError as exc:
        raise explain(exc) from None
    if not found:
        raise CommandError("the token works but sees no administration; nothing stored")
    grant = store.put_grant(credential, [str(a["id"]) for a in found])
    for administration in found:
        print(f"connected administration {administration['id']} ({administration.get('name')})")
    print(f"grant {grant}: {plural(len(found), 'administration')} share one token pair")
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
        if credential.needs_reauth:
            state = f"NEEDS RE-AUTHORISATION ({credential.needs_reauth}): hookbird oauth url"
        elif credential.expires_at:
            when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(credential.expires_at))
            state = f"expires {when}"
        else:
            state = "no expiry"
        grant = f"grant {credential.grant_id}" if credential.grant_id else "own entry"
        print(
            f"{administration:<20} {credential.kind:<9} {grant:<22} "
            f"{' '.join(credential.scopes):<30} {state}"
        )
    return EXIT_OK


def cmd_rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    store = CredentialStore(redis_client(settings), settings.secret_key)
    try:
        entries, grants = store.rotate()
    except CredentialError as exc:
        raise CommandError(str(exc)) from None
    print(
        f"re-encrypted {plural(entries, 'administration entry')} and {plural(grants, 'grant')} "
        "with the first HOOKBIRD_SECRET_KEY; signing secrets: `hookbird webhooks encrypt`"
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
        "Trade the code from the redirect for tokens and store them encrypted, as one grant "
        "for every administration they cover. Reads the code, or the whole redirect URL, from "
        "stdin (CODE -) or a prompt; with --state the redirect's state must match.",
        'printf \'%s\\n\' "$REDIRECT_URL" | hookbird oauth exchange - --state="$STATE"',
        cmd_exchange,
    )
    code.add_argument(
        "code",
        nargs="?",
        help="- reads the code or redirect URL from stdin (a value here is visible in ps); "
        "omitted: prompted for",
    )
    code.add_argument("--state", help="the state `oauth url` printed; checked against the URL's")
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
        "List administrations with stored credentials, their grant, and grants that need "
        "re-authorisation.",
        "hookbird oauth list",
        cmd_list,
    )
    add_command(
        actions,
        "rotate-key",
        "Re-encrypt every stored credential with the first key in HOOKBIRD_SECRET_KEY, so "
        "the others can be dropped (run `hookbird webhooks encrypt` for signing secrets).",
        "HOOKBIRD_SECRET_KEY=new-key,old-key hookbird oauth rotate-key",
        cmd_rotate_key,
    )
