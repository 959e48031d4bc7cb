"""An example hookbird plugin: what a team connecting its SaaS to Moneybird would write.

hookbird finds ``router`` through the ``hookbird.handlers`` entry point in this
package's pyproject. Configuration comes from the plugin's own environment variables.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import cast

import httpx2

from hookbird import Context, Event, RetryLater, Router
from hookbird.moneybird.types import Contact

router = Router()


def summary_url() -> str | None:
    return os.environ.get("HOOKBIRD_EXAMPLE_SUMMARY_URL") or None


def database(ctx: Context) -> Path:
    """HOOKBIRD_EXAMPLE_DB, else a file in hookbird's data directory (HOOKBIRD_DATA_DIR)."""
    configured = os.environ.get("HOOKBIRD_EXAMPLE_DB")
    if configured:
        return Path(configured)
    ctx.settings.data_dir.mkdir(parents=True, exist_ok=True)
    return ctx.settings.data_dir / "hookbird-example.sqlite3"


@router.on("sales_invoice_state_changed_to_paid")
def post_paid_summary(event: Event, ctx: Context) -> None:
    """Tell our own system an invoice was paid, with fresh figures from Moneybird."""
    url = summary_url()
    if url is None:
        ctx.log.warning("HOOKBIRD_EXAMPLE_SUMMARY_URL is not set; paid invoice not forwarded")
        return
    if event.entity_id is None:
        ctx.log.warning("paid push without an invoice id; nothing to forward")
        return
    # A SalesInvoice (hookbird.moneybird.types): mypy and editors know its keys.
    invoice = ctx.moneybird.sales_invoices.get(event.entity_id)
    summary = {
        "administration_id": event.administration_id,
        "invoice_id": invoice.get("invoice_id"),
        "moneybird_id": invoice.get("id"),
        "contact_id": invoice.get("contact_id"),
        "total": invoice.get("total_price_incl_tax"),
        "currency": invoice.get("currency"),
        "state": invoice.get("state"),
    }
    try:
        response = httpx2.post(
            url, json=summary, headers={"Idempotency-Key": ctx.idempotency_key}, timeout=10
        )
    except httpx2.HTTPError as exc:
        raise RetryLater(f"summary endpoint unreachable: {exc}") from exc
    if response.status_code >= 500:
        raise RetryLater(f"summary endpoint answered {response.status_code}", after=60)
    response.raise_for_status()  # a 4xx is our own bug: hookbird retries, then dead-letters
    ctx.log.info("paid invoice forwarded", invoice_id=summary["invoice_id"])


SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    administration_id TEXT NOT NULL,
    id TEXT NOT NULL,
    company_name TEXT,
    firstname TEXT,
    lastname TEXT,
    email TEXT,
    version INTEGER,
    PRIMARY KEY (administration_id, id)
)
"""


@router.on("contact_created", latest_only=True)
@router.on("contact_changed", latest_only=True)
def upsert_contact(event: Event, ctx: Context) -> None:
    """Keep a local copy of each contact; the push's entity is fresh enough for that."""
    contact = cast(Contact, event.entity)  # the push's entity, typed like the API's contacts
    # closing: sqlite3's own `with` commits but leaves the connection open
    with closing(sqlite3.connect(database(ctx))) as db, db:
        db.execute(SCHEMA)
        db.execute(
            "INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (administration_id, id) DO UPDATE SET"
            " company_name = excluded.company_name,"
            " firstname = excluded.firstname, lastname = excluded.lastname,"
            " email = excluded.email, version = excluded.version",
            (
                event.administration_id,
                event.entity_id,
                contact.get("company_name"),
                contact.get("firstname"),
                contact.get("lastname"),
                contact.get("email"),
                event.version,
            ),
        )
