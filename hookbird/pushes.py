"""Pushes shaped exactly like Moneybird's, for ``hookbird send`` and for tests.

A push is built without any I/O: :func:`build_push` turns an event name, an entity
and the webhook's credentials into the raw body and headers Moneybird would send
(string IDs, ``Idempotency-Key``, ``Moneybird-Signature: t=…,v1=…``,
``User-Agent``). Sample entities ship in ``hookbird/data/samples/``; each is the
example response of Moneybird's OpenAPI spec for that resource, with IDs as strings
(see ``hookbird/data/samples/README.md``). Events about other resources get a
minimal entity with an ``id``.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from hookbird import catalog
from hookbird.signing import sign

#: What ``hookbird send`` puts in ``User-Agent``: recognisably a simulated delivery.
USER_AGENT = "Moneybird-Webhook (hookbird send)"

#: Event group → (``entity_type`` of its pushes, sample file). Longest group wins.
ENTITY_TYPES: dict[str, tuple[str, str | None]] = {
    "sales_invoice": ("SalesInvoice", "sales_invoice"),
    "external_sales_invoice": ("ExternalSalesInvoice", "external_sales_invoice"),
    "recurring_sales_invoice": ("RecurringSalesInvoice", None),
    "contact": ("Contact", "contact"),
    "contact_person": ("ContactPerson", None),
    "estimate": ("Estimate", "estimate"),
    "document": ("Document", "purchase_invoice"),
    "document_style": ("DocumentStyle", None),
    "time_entry": ("TimeEntry", "time_entry"),
    "payment": ("Payment", "payment"),
    "payment_method": ("PaymentMethod", None),
    "payment_transaction": ("PaymentTransaction", None),
    "payment_transaction_batch": ("PaymentTransactionBatch", None),
}

#: Sample files by name, for ``--entity`` (``receipt`` and the like).
SAMPLE_NAMES = (
    "sales_invoice",
    "external_sales_invoice",
    "contact",
    "estimate",
    "purchase_invoice",
    "receipt",
    "time_entry",
    "payment",
)


class UnknownEvent(ValueError):
    """The action is not one of Moneybird's event names; ``suggestions`` are close ones."""

    def __init__(self, action: str, suggestions: list[str]) -> None:
        hint = f" Did you mean {' or '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"{action!r} is not a Moneybird event name.{hint} "
            "`hookbird send --list` shows all of them; --any-action sends it anyway."
        )
        self.action = action
        self.suggestions = suggestions


@dataclass(frozen=True)
class Push:
    """One delivery: the exact bytes and headers to POST."""

    body: bytes
    headers: dict[str, str] = field(repr=False)
    idempotency_key: str
    action: str
    entity_type: str | None
    entity_id: str | None


@cache
def _sample_text(name: str) -> str:
    return resources.files("hookbird").joinpath(f"data/samples/{name}.json").read_text("utf-8")


def sample(name: str) -> dict[str, Any]:
    """A fresh copy of a shipped sample entity (``contact``, ``sales_invoice`` …)."""
    if name not in SAMPLE_NAMES:
        raise KeyError(f"no sample {name!r}; there are: {', '.join(SAMPLE_NAMES)}")
    loaded: dict[str, Any] = json.loads(_sample_text(name))
    return loaded


def check_action(action: str) -> None:
    """Raise :class:`UnknownEvent` unless ``action`` is an official event name."""
    if action != "test_webhook" and action not in catalog.events():
        raise UnknownEvent(action, suggestions(action))


def suggestions(action: str, limit: int = 3) -> list[str]:
    """Events close to a mistyped action: :func:`hookbird.catalog.suggest`, events only."""
    return catalog.suggest(action, limit, with_groups=False)


def entity_type_for(action: str) -> tuple[str, str | None]:
    """The ``entity_type`` a push with this action carries, and the sample to use."""
    best = ""
    for group in ENTITY_TYPES:
        if catalog.matches(group, action) and len(group) > len(best):
            best = group
    if best:
        return ENTITY_TYPES[best]
    groups = [g for g in catalog.groups() if catalog.matches(g, action)]
    base = min(groups, key=len) if groups else action.split("_")[0]
    return "".join(part.capitalize() for part in base.split("_")), None


def new_id() -> str:
    """A 64-bit Moneybird-style ID, as a string."""
    return str(secrets.randbelow(2**62) + 2**58)


def entity_for(action: str, administration_id: str) -> tuple[str, dict[str, Any]]:
    """A realistic entity for this action: the shipped sample, or a minimal one."""
    entity_type, name = entity_type_for(action)
    entity = sample(name) if name else {"id": new_id()}
    entity["administration_id"] = administration_id
    marker = "_state_changed_to_"
    if marker in action and "state" in entity:
        entity["state"] = action.split(marker, 1)[1]
    return entity_type, entity


def build_push(
    action: str,
    entity: dict[str, Any] | None,
    *,
    entity_type: str | None,
    administration_id: str,
    webhook_id: str,
    token: str,
    secrets_: tuple[str, ...] = (),
    idempotency_key: str | None = None,
    now: float | None = None,
) -> Push:
    """The body and headers of a push as Moneybird sends it.

    ``action == "test_webhook"`` builds the registration check instead: no
    ``webhook_id``, and the token under ``token``. Each secret adds a ``v1``.
    """
    if action == "test_webhook":
        data: dict[str, Any] = {
            "administration_id": administration_id,
            "action": action,
            "token": token,
        }
        entity_id = None
    else:
        entity = entity or {}
        entity_id = str(entity["id"]) if entity.get("id") is not None else None
        data = {
            "administration_id": administration_id,
            "webhook_id": webhook_id,
            "webhook_token": token,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "state": entity.get("state"),
            "action": action,
            "entity": entity,
        }
    body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    key = idempotency_key or secrets.token_hex(16)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": key,
    }
    if secrets_:
        stamp = int(time.time() if now is None else now)
        v1 = ",".join(f"v1={sign(body, s, stamp)}" for s in secrets_)
        headers["Moneybird-Signature"] = f"t={stamp},{v1}"
    return Push(body, headers, key, action, entity_type if entity_id else None, entity_id)


def bump_version(entity: dict[str, Any], step: int) -> dict[str, Any]:
    """A copy of ``entity`` ``step`` versions later, as the next push about it would carry."""
    copy = dict(entity)
    if isinstance(copy.get("version"), int):
        copy["version"] = copy["version"] + step
    return copy
