"""``hookbird send``: be Moneybird on your laptop.

Delivers signed pushes built by :mod:`hookbird.pushes` to a receiver, one line per
push with its status and latency. The defaults talk to ``hookbird dev`` in the same
folder: its URL and token from its state (:mod:`hookbird.devstate`; else ``HOST``/``PORT``
and ``.hookbird/dev-webhook-token``), so ``hookbird send contact_created`` just works.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import httpx2

from hookbird import catalog, devstate, pushes
from hookbird.commands.helpers import EXIT_ERROR, EXIT_OK, CommandError, add_command, root_cause
from hookbird.settings import Settings
from hookbird.wording import plural

DEFAULT_ADMINISTRATION = "123"
DEFAULT_WEBHOOK_ID = "418000000000000001"


def default_url(settings: Settings) -> str:
    """The running `hookbird dev` in this folder, else http://HOST:PORT."""
    state = devstate.running(settings.data_dir)
    if state is not None and state.endpoint:
        return state.endpoint
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}/webhooks/moneybird"


def resolve_token(args: argparse.Namespace, settings: Settings) -> str:
    """--token, else HOOKBIRD_WEBHOOK_TOKEN, else the token `hookbird dev` made."""
    if args.token:
        return str(args.token)
    if settings.webhook_token:
        return settings.webhook_token
    path = settings.data_dir / "dev-webhook-token"
    if path.is_file():
        return path.read_text().strip()
    raise CommandError(
        f"no webhook token: pass --token, set HOOKBIRD_WEBHOOK_TOKEN, or start `hookbird dev` "
        f"in this folder (it keeps its token in {path})."
    )


def load_entity(path: Path) -> dict[str, Any]:
    """An entity from a file: the API's JSON for it, wrapped (``{"contact": …}``) or not."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read an entity from {path}: {exc}") from exc
    if isinstance(data, dict) and len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, dict) and "id" in inner:
            data = inner
    if not isinstance(data, dict):
        raise CommandError(f"{path} must hold one JSON object (the entity)")
    if "id" in data and data["id"] is not None:
        data["id"] = str(data["id"])
    return data


def describe(response: httpx2.Response) -> str:
    """The answer's ``status``; for a refusal also its reason and ``Retry-After``."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200].strip()
    if not isinstance(data, dict):
        return ""
    shown = str(data.get("status") or "")
    if response.status_code != 200:
        reason = data.get("error") or {k: v for k, v in data.items() if k != "status"} or ""
        shown = ": ".join(str(p) for p in (shown, reason) if p)
        if response.headers.get("retry-after"):
            shown += f" (Retry-After: {response.headers['retry-after']} s)"
    return shown


def cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    if args.list:
        for name, explanation in catalog.events().items():
            print(f"{name:<60} {explanation}")
        return EXIT_OK
    action = "test_webhook" if args.test_webhook else args.action
    if not action:
        raise CommandError("name the event to send, e.g. `hookbird send contact_created`")
    if not args.any_action:
        try:
            pushes.check_action(action)
        except pushes.UnknownEvent as exc:
            raise CommandError(str(exc)) from exc
    token = resolve_token(args, settings)
    secrets_ = tuple(args.secret) if args.secret else settings.webhook_secrets
    administration = args.administration
    entity_type, entity = pushes.entity_for(action, administration)
    if args.entity_file:
        entity = load_entity(args.entity_file)
    elif isinstance(entity.get("version"), int):
        entity["version"] = int(time.time())  # Moneybird's versions are update timestamps
    entity_type = args.entity_type or entity_type
    url = args.url or default_url(settings)
    logging.getLogger("httpx2").setLevel(logging.WARNING)  # our own line per push says it all
    failures = 0
    with httpx2.Client(timeout=args.timeout) as http:
        for number in range(args.count):
            push = pushes.build_push(
                action,
                pushes.bump_version(entity, number),
                entity_type=entity_type,
                administration_id=administration,
                webhook_id=args.webhook_id,
                token=token,
                secrets_=secrets_,
            )
            for attempt in range(2 if args.duplicate else 1):
                started = time.perf_counter()
                try:
                    response = http.post(url, content=push.body, headers=push.headers)
                except httpx2.HTTPError as exc:
                    raise CommandError(
                        f"cannot reach {url}: {root_cause(exc)}. Is `hookbird dev` running? "
                        "(or pass --url)"
                    ) from exc
                ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    failures += 1
                what = " ".join(p for p in (action, push.entity_type, push.entity_id) if p)
                again = " (again)" if attempt else ""
                print(
                    f"{response.status_code} {describe(response):<10} {ms:7.1f} ms  "
                    f"{what}  key={push.idempotency_key[:12]}…{again}",
                    flush=True,
                )
    if failures:
        print(f"{plural(failures, 'push', 'pushes')} not accepted: the receiver's log says why")
        return EXIT_ERROR
    return EXIT_OK


def register(commands: Any) -> None:
    send = add_command(
        commands,
        "send",
        "Deliver signed pushes to a receiver exactly as Moneybird does (defaults: the "
        "`hookbird dev` in this folder).",
        "hookbird send sales_invoice_state_changed_to_paid --count 3",
        cmd_send,
    )
    send.add_argument("action", nargs="?", help="the event name, e.g. contact_created")
    send.add_argument(
        "--url",
        help="receiver endpoint (default: the `hookbird dev` in this folder, else "
        "http://HOST:PORT/webhooks/moneybird)",
    )
    send.add_argument(
        "--token",
        help="webhook_token (default: HOOKBIRD_WEBHOOK_TOKEN, else .hookbird/dev-webhook-token)",
    )
    send.add_argument(
        "--secret",
        action="append",
        help="sign with this secret (repeatable: one v1 each; default: HOOKBIRD_WEBHOOK_SECRET)",
    )
    send.add_argument(
        "--administration",
        default=DEFAULT_ADMINISTRATION,
        help=f"administration_id (default {DEFAULT_ADMINISTRATION})",
    )
    send.add_argument("--webhook-id", default=DEFAULT_WEBHOOK_ID, help="webhook_id to send")
    send.add_argument(
        "--entity-file",
        type=Path,
        help="JSON of the entity (as the API returns it) instead of the shipped sample",
    )
    send.add_argument("--entity-type", help="entity_type (default: derived from the event)")
    send.add_argument("--count", type=int, default=1, help="pushes to send (each its own key)")
    send.add_argument(
        "--duplicate",
        action="store_true",
        help="send each push twice with the same Idempotency-Key, as Moneybird's retries do",
    )
    send.add_argument(
        "--test-webhook",
        action="store_true",
        help="send Moneybird's registration check (action test_webhook) instead",
    )
    send.add_argument(
        "--any-action", action="store_true", help="send an action that is not an official event"
    )
    send.add_argument("--list", action="store_true", help="list every official event name")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
