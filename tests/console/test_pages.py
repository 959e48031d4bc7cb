"""console.pages against a real Redis: paging through the time index, filters, bounds."""

from __future__ import annotations

import json

import redis

from console.pages import Cursor, Filters, page
from hookbird import keys
from hookbird.stored import pack_push


def store(client: redis.Redis, event_id: str, received: float, **fields: str) -> None:
    """A stored push as the receiver writes it: the value and its place in the time index."""
    header = {
        "received_at": repr(received),
        "action": fields.get("action", "contact_created"),
        "administration_id": fields.get("administration_id", "123"),
        "entity_type": fields.get("entity_type", "Contact"),
        "entity_id": fields.get("entity_id", "456"),
    }
    body = json.dumps({**header, "webhook_token": ""}).encode()
    client.set(keys.event_key(event_id), pack_push(header, body))
    client.zadd(keys.EVENTS_INDEX, {event_id: received})


def walk(client: redis.Redis, filters: Filters, **limits: int) -> tuple[list[str], int]:
    """Every page from the newest on: the ids shown, in order, and how many pages."""
    shown: list[str] = []
    start: Cursor | None = None
    pages = 0
    while True:
        found = page(client, filters, start=start, **limits)
        pages += 1
        shown += [row.event_id for row in found.rows]
        if found.next is None:
            return shown, pages
        start = Cursor.parse(str(found.next))


def test_pages_walk_every_push_once_even_when_receipt_times_tie(
    redis_client: redis.Redis,
) -> None:
    """Pushes that share a receipt time across a page boundary are each shown once."""
    times = [100.0, 101.0, 102.0, 102.0, 102.0, 102.0, 103.0]
    for n, received in enumerate(times):
        store(redis_client, f"e{n}", received)
    shown, pages = walk(redis_client, Filters(), size=2)
    assert sorted(shown) == [f"e{n}" for n in range(7)]
    assert len(shown) == 7
    assert shown[0] == "e6"  # newest first
    assert shown[-1] == "e0"
    assert pages == 4


def test_a_rare_match_costs_a_bounded_scan_per_page(redis_client: redis.Redis) -> None:
    """A filter matching only the oldest push reads at most scan_limit pushes per page and
    says where to go on; the match turns up on a later page."""
    for n in range(50):
        store(redis_client, f"e{n:02}", 1000.0 + n, action="sales_invoice_paid" if n == 0 else "x")
    first = page(redis_client, Filters(action="sales_invoice"), scan_limit=20)
    assert first.rows == []
    assert first.examined == 20
    assert first.next is not None
    shown, pages = walk(redis_client, Filters(action="sales_invoice"), scan_limit=20)
    assert shown == ["e00"]
    assert pages == 3


def test_filters_by_entity_administration_and_time(redis_client: redis.Redis) -> None:
    """Entity type and/or id, administration and a receipt-time range each narrow the list."""
    store(redis_client, "a", 10.0, entity_type="Contact", entity_id="1")
    store(redis_client, "b", 20.0, entity_type="SalesInvoice", entity_id="2")
    store(redis_client, "c", 30.0, entity_type="Contact", entity_id="3", administration_id="9")

    def ids(filters: Filters) -> list[str]:
        return [row.event_id for row in page(redis_client, filters).rows]

    assert ids(Filters(entity="contact")) == ["c", "a"]
    assert ids(Filters(entity="Contact 3")) == ["c"]
    assert ids(Filters(entity="2")) == ["b"]
    assert ids(Filters(administration="9")) == ["c"]
    assert ids(Filters(since=15.0, until=25.0)) == ["b"]
    assert ids(Filters(outcome="expired")) == ["c", "b", "a"]  # no RQ job, no record
    assert ids(Filters(outcome="succeeded")) == []
