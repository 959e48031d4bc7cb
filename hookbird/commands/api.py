"""``hookbird api``: any Moneybird API call from the shell, the way ``gh api`` does it.

For the calls no command covers (a report, a lookup, trying an endpoint before writing a
handler) without a second set of credentials or a second rate budget: the request goes
through the same client the workers use, so it draws from the shared budget in Redis
(waiting, and saying so, when it is spent), uses the administration's OAuth token or
``MONEYBIRD_API_TOKEN``, and fails with the same messages as the other commands. The
answer is printed as JSON on stdout (``--paginate``: every page as one array), so it
pipes into ``jq``; a non-JSON answer (a PDF) goes to stdout as it came, if stdout is
not a terminal.

Fields (``-f key=value`` strings, ``-F key=value`` typed) go to the query string of a
GET or DELETE and into the JSON body otherwise; ``key[sub]=`` nests and ``key[]=``
appends, so ``-f 'contact[company_name]=Vogel'`` is Moneybird's wrapped body and
``-f 'filter[state]=open'`` a filter dict (:mod:`hookbird.moneybird.filters`).
With ``--input`` the body comes from a file and the fields go to the query string.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from hookbird.commands.helpers import EXIT_OK, CommandError, add_command, explain, redis_client
from hookbird.commands.webhooks import api_client
from hookbird.moneybird import errors
from hookbird.moneybird.credentials import CredentialError
from hookbird.moneybird.responses import decode_body, stringify_ids
from hookbird.settings import Settings

METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")
QUERY_METHODS = frozenset({"GET", "DELETE"})
PLACEHOLDER = "{administration_id}"

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")

EXAMPLES = """\
  hookbird api GET /{administration_id}/contacts --administration 123 --paginate
  hookbird api GET /administrations
  hookbird api GET /{administration_id}/sales_invoices -A 123 \\
      -f 'filter[state]=open' -f 'filter[period]=prev_year'
  hookbird api POST /{administration_id}/contacts -A 123 -f 'contact[company_name]=Vogel B.V.'
  hookbird api PATCH /{administration_id}/contacts/456 -A 123 --input contact.json
  hookbird api GET /{administration_id}/sales_invoices/789/download_pdf -A 123 > invoice.pdf

Paths are relative to MONEYBIRD_API_URL; .json is added as the client does.
{administration_id} is filled in from --administration."""


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "api",
        "Call any Moneybird API endpoint through hookbird's client; JSON on stdout.",
        "hookbird api GET /{administration_id}/contacts --administration 123 --paginate",
        cmd_api,
    )
    parser.epilog = f"examples:\n{EXAMPLES}"
    parser.add_argument(
        "method", type=str.upper, choices=METHODS, metavar="METHOD", help=", ".join(METHODS)
    )
    parser.add_argument("path", metavar="PATH", help="e.g. /{administration_id}/contacts")
    parser.add_argument(
        "-A",
        "--administration",
        help="the administration id: fills {administration_id} and picks its credentials",
    )
    parser.add_argument(
        "--paginate",
        action="store_true",
        help="GET every page (Link: rel=next) and print them as one JSON array",
    )
    parser.add_argument(
        "-f",
        "--raw-field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a string field (query for GET/DELETE, JSON body otherwise); repeatable",
    )
    parser.add_argument(
        "-F",
        "--field",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a typed field: true, false, null and numbers become JSON, @FILE reads a file",
    )
    parser.add_argument(
        "--input",
        metavar="FILE",
        help="the JSON request body from FILE (- for stdin); fields then go to the query",
    )


def cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    path = fill_path(args.path, args.administration)
    # /123/contacts without --administration: 123's own (OAuth) credentials, as a handler's
    administration = args.administration or administration_in(path)
    fields = parse_fields(args.raw_field, args.field)
    body = read_input(args.input) if args.input else None
    if args.paginate and args.method != "GET":
        raise CommandError("--paginate follows the pages of a GET; drop it for other methods")
    in_query = args.method in QUERY_METHODS or args.input is not None
    if args.method in QUERY_METHODS and args.input is not None:
        raise CommandError(f"--input sends a body, which Moneybird ignores on {args.method}")
    query = fields if in_query else {}
    if not in_query and fields:
        body = fields
    for key, value in query.items():
        if isinstance(value, dict | list) and key != "filter":
            raise CommandError(
                f"field {key!r} is nested, which a query string cannot carry "
                "(only filter[...] is: it becomes Moneybird's filter string)"
            )
    rc = redis_client(settings)
    try:
        client = api_client(settings, rc)
        if client is None:
            raise CommandError(
                "no Moneybird credentials: set MONEYBIRD_API_TOKEN, or connect an "
                "administration with `hookbird oauth exchange`"
            )
        with client:
            try:
                if args.paginate:
                    items = list(
                        client.paginate(path, query or None, administration_id=administration)
                    )
                    print(json.dumps(items, indent=2, ensure_ascii=False))
                    return EXIT_OK
                response = client.send(
                    args.method,
                    path,
                    params=query or None,
                    json=body,
                    administration_id=administration,
                    follow_redirects=args.method == "GET",
                )
            except ValueError as exc:  # a filter Moneybird would misread
                raise CommandError(str(exc)) from None
            except (errors.MoneybirdError, CredentialError) as exc:
                show_error_body(exc)
                raise explain(exc, hints=HINTS) from None
            write_body(response.content, response.headers.get("content-type"))
            return EXIT_OK
    finally:
        rc.close()


HINTS: dict[type[Exception], str] = {
    errors.Forbidden: "the token lacks the scope this endpoint needs",
    errors.NotFound: "check the path and the ids in it (and --administration)",
}


def fill_path(path: str, administration: str | None) -> str:
    """``path`` with ``{administration_id}`` filled in, or a :class:`CommandError`."""
    if PLACEHOLDER in path:
        if not administration:
            raise CommandError(
                f"the path has {PLACEHOLDER}: pass --administration ID "
                "(`hookbird api GET /administrations` lists them)"
            )
        path = path.replace(PLACEHOLDER, administration)
    if path.startswith(("http://", "https://")):
        raise CommandError(
            "give the path below MONEYBIRD_API_URL (e.g. /administrations), not a full URL"
        )
    return "/" + path.lstrip("/")


def administration_in(path: str) -> str | None:
    """The administration id a path starts with (``/123/contacts`` → ``123``), if any."""
    first = path.lstrip("/").split("/", 1)[0].removesuffix(".json")
    return first if first.isdigit() else None


def parse_fields(raw: list[str], typed: list[str]) -> dict[str, Any]:
    """``-f``/``-F`` fields as one dict; ``a[b]=`` nests and ``a[]=`` appends."""
    found: dict[str, Any] = {}
    for item, is_typed in [*((r, False) for r in raw), *((t, True) for t in typed)]:
        key, sep, text = item.partition("=")
        match = _KEY.match(key)
        if not sep or not match:
            raise CommandError(f"a field is KEY=VALUE (or KEY[sub]=VALUE), got {item!r}")
        value = typed_value(text) if is_typed else text
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        place(found, parts, value, item)
    return found


def place(into: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    head, rest = parts[0], parts[1:]
    if not rest:
        if head in into:
            raise CommandError(f"field {item!r} sets {head!r} a second time")
        into[head] = value
        return
    if rest[0] == "":
        if len(rest) > 1:
            raise CommandError(f"field {item!r}: [] must come last")
        listed = into.setdefault(head, [])
        if not isinstance(listed, list):
            raise CommandError(f"field {item!r}: {head!r} is not a list")
        listed.append(value)
        return
    nested = into.setdefault(head, {})
    if not isinstance(nested, dict):
        raise CommandError(f"field {item!r}: {head!r} already holds a value")
    place(nested, rest, value, item)


def typed_value(text: str) -> Any:
    """``-F`` values: true/false/null and numbers as JSON, ``@FILE`` a file's text."""
    if text.startswith("@"):
        return read_text(text[1:])
    if text in ("true", "false", "null") or re.fullmatch(r"-?\d+(\.\d+)?", text):
        return json.loads(text)
    return text


def read_text(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        with open(name, encoding="utf-8") as source:
            return source.read()
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror}") from None


def read_input(name: str) -> Any:
    text = read_text(name)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"--input {name} is not JSON ({exc})") from None


def write_body(content: bytes, content_type: str | None) -> None:
    """JSON pretty-printed (ids as strings, as the client gives them); anything else as is."""
    if not content:
        return
    decoded = decode_body(content, content_type)
    if isinstance(decoded, dict | list):
        print(json.dumps(stringify_ids(decoded), indent=2, ensure_ascii=False))
        return
    if "text" in (content_type or "") or "json" in (content_type or ""):
        print(content.decode("utf-8", "replace"))
        return
    if sys.stdout.isatty():
        raise CommandError(
            f"the answer is {content_type or 'binary'} ({len(content)} bytes); "
            "redirect stdout to a file: hookbird api … > file"
        )
    sys.stdout.flush()
    sys.stdout.buffer.write(content)
    sys.stdout.buffer.flush()


def show_error_body(exc: Exception) -> None:
    """Moneybird's explanation (a 422's field errors) on stdout, for scripts and jq."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict | list):
        print(json.dumps(body, indent=2, ensure_ascii=False))
