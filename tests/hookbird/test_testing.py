"""hookbird.testing: made events match what workers parse, contexts match what workers build,
the fake answers hookbird's client like Moneybird, and no hookbird process loads the module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hookbird.context import idempotency_key
from hookbird.events import Event, event_from_stored
from hookbird.moneybird import (
    Administration,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
)
from hookbird.routing import Router, handler_name
from hookbird.stored import pack_push, unpack_push
from hookbird.testing import (
    ADMINISTRATION,
    Call,
    FakeMoneybird,
    make_context,
    make_event,
)

ROOT = Path(__file__).resolve().parents[2]


def paid(event: Event, ctx: object) -> None:
    """A handler for the tests below."""


def test_make_event_takes_id_state_and_version_from_the_entity() -> None:
    """entity_id (as str), state and version come from the entity; the type from the action."""
    event = make_event(
        "sales_invoice_state_changed_to_paid",
        entity={"id": 496081407814141081, "state": "paid", "version": 1795323120},
    )
    assert event.entity_id == "496081407814141081"
    assert event.state == "paid"
    assert event.version == 1795323120
    assert event.entity_type == "SalesInvoice"
    assert event.administration_id == ADMINISTRATION
    assert event.attempt == 1
    assert event.idempotency_key
    assert len(event.event_id) == 28


def test_make_event_without_an_entity_still_names_one() -> None:
    """Without an entity the event is still about one, with a fresh id; given values win."""
    first, second = make_event("contact_created"), make_event("contact_created")
    assert first.entity_id
    assert first.entity == {"id": first.entity_id}
    assert first.entity_id != second.entity_id
    assert first.event_id != second.event_id
    chosen = make_event("contact_changed", entity_id=7, entity_type="Contact", state="active")
    assert (chosen.entity_id, chosen.entity_type, chosen.state) == ("7", "Contact", "active")
    assert chosen.entity == {"id": "7", "state": "active"}


def test_a_made_event_is_what_a_worker_parses_from_the_same_push() -> None:
    """Stored the way the receiver stores a push, the made event's push reads back equal."""
    made = make_event(
        "contact_changed",
        entity={"id": "4", "state": "active", "version": 12, "firstname": "Ada"},
        administration_id=123,
    )
    body = {
        "administration_id": made.administration_id,
        "webhook_id": made.webhook_id,
        "webhook_token": "",
        "entity_type": made.entity_type,
        "entity_id": made.entity_id,
        "state": made.state,
        "action": made.action,
        "entity": made.entity,
    }
    header = {
        "idempotency_key": str(made.idempotency_key),
        "received_at": repr(made.received_at),
        "action": made.action,
        "administration_id": made.administration_id,
        "webhook_id": str(made.webhook_id),
        "entity_type": str(made.entity_type),
        "entity_id": str(made.entity_id),
    }
    stored = unpack_push(pack_push(header, json.dumps(body).encode()))
    parsed = event_from_stored(made.event_id, stored)
    assert parsed == made
    assert parsed.entity == made.entity


@pytest.mark.parametrize(
    ("action", "entity_type"),
    [
        ("contact_created", "Contact"),
        ("contact_person_created", "ContactPerson"),
        ("sales_invoice_state_changed_to_paid", "SalesInvoice"),
        ("sales_invoice_send_email", "SalesInvoice"),
        ("external_sales_invoice_created", "ExternalSalesInvoice"),
        ("estimate_created_from_original", "Estimate"),
        ("document_saved", "Document"),
    ],
)
def test_entity_type_follows_the_event_group(action: str, entity_type: str) -> None:
    """The entity type is the event group that names a thing, not a change."""
    assert make_event(action).entity_type == entity_type


def test_made_events_route_like_pushes() -> None:
    """A Router picks the same handlers for a made event as for the push it stands for."""
    router = Router()
    router.on("sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")(paid)
    event = make_event("sales_invoice_state_changed_to_paid")
    assert [h.name for h in router.handlers_for(event.action, event.entity_type)] == [
        handler_name(paid)
    ]


def test_make_context_gives_the_workers_idempotency_key() -> None:
    """Naming the handler (function or name) gives the key the worker would give it."""
    event = make_event("contact_changed")
    by_function = make_context(event, handler=paid)
    assert by_function.handler == handler_name(paid)
    assert by_function.idempotency_key == idempotency_key(event.event_id, handler_name(paid))
    assert make_context(event, handler="crm:sync").idempotency_key == idempotency_key(
        event.event_id, "crm:sync"
    )
    assert make_context(event).event is event


def test_ctx_moneybird_is_hookbirds_client_on_the_fake() -> None:
    """moneybird=FakeMoneybird(): ctx.moneybird is the real client, and the fake saw the call."""
    fake = FakeMoneybird()
    invoice = fake.add("sales_invoices", {"invoice_id": "2026-0001", "state": "paid"})
    event = make_event("sales_invoice_state_changed_to_paid", entity=invoice)
    ctx = make_context(event, moneybird=fake)
    assert isinstance(ctx.moneybird, Administration)
    assert ctx.moneybird.sales_invoices.get(invoice["id"]) == invoice
    assert fake.requests == [
        Call("GET", f"/{ADMINISTRATION}/sales_invoices/{invoice['id']}.json", {}, None)
    ]


def test_ctx_moneybird_can_be_any_object_or_nothing() -> None:
    """Any other object is ctx.moneybird itself; None makes ctx.moneybird raise, as a worker
    without a client does."""
    stand_in = object()
    assert make_context(moneybird=stand_in).moneybird is stand_in
    with pytest.raises(RuntimeError, match="no Moneybird client"):
        _ = make_context().moneybird


def test_the_fake_pages_wraps_and_versions_like_moneybird() -> None:
    """list follows Link pages, create wraps the body, update bumps the version, sync and
    fetch_many work, and what the client wrote is in the fake's records."""
    fake = FakeMoneybird()
    for n in range(120):
        fake.add("contacts", {"company_name": f"Contact {n}"})
    contacts = fake.client().administration(ADMINISTRATION).contacts
    assert len(list(contacts.list())) == 120
    assert fake.count("GET", "/contacts.json") == 2
    created = contacts.create(company_name="Vogel B.V.")
    assert fake.requests[-1].body == {"contact": {"company_name": "Vogel B.V."}}
    updated = contacts.update(created["id"], firstname="Ada")
    assert updated["version"] == created["version"] + 1
    assert fake.record("contacts", created["id"]) == updated
    assert len(contacts.sync()) == 121
    assert contacts.fetch_many([created["id"]]) == [updated]


def test_the_fake_refuses_like_moneybird() -> None:
    """A wrong token, an unknown record, a spent rate limit and 5xx bursts raise hookbird's
    errors; a GET is retried through a 5xx, a POST is not."""
    fake = FakeMoneybird(limit=4)
    admin = fake.client().administration(ADMINISTRATION)
    with pytest.raises(Unauthorized):
        fake.client(token="nope-nope-nope").administration(ADMINISTRATION).contacts.get("1")
    with pytest.raises(NotFound):
        admin.contacts.get("404")
    fake.fail_next(1)
    assert list(admin.tax_rates.list()) == []
    assert fake.count("GET", "/tax_rates.json") == 2
    fake.fail_next(1)
    with pytest.raises(ServerError):
        admin.contacts.create(company_name="Vogel B.V.")
    with pytest.raises(RateLimited) as spent:
        admin.contacts.get("1")
    assert spent.value.retry_at is not None
    assert spent.value.retry_at > 1e9
    assert fake.stats["rate_limited"] == 1


def test_the_fake_serves_downloads_through_the_transport() -> None:
    """download_pdf follows Moneybird's redirect to the file, on the same transport."""
    fake = FakeMoneybird()
    invoice = fake.add("sales_invoices", {"invoice_id": "2026-0002"})
    pdf = fake.client().administration(ADMINISTRATION).sales_invoices.download_pdf(invoice["id"])
    assert pdf.startswith(b"%PDF")
