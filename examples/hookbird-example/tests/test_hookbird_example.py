"""The example plugin's handlers, tested the way a plugin author tests theirs: made events,
made contexts, and hookbird.testing's FakeMoneybird behind ``ctx.moneybird``."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hookbird_example import post_paid_summary, upsert_contact
from structlog.testing import capture_logs

from hookbird import RetryLater, Settings
from hookbird.testing import FakeMoneybird, make_context, make_event


class SummaryEndpoint:
    """Our own system's summary endpoint on a real socket: records what it was sent."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.received: list[tuple[dict[str, str], Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                endpoint.received.append((dict(self.headers), json.loads(body)))
                self.send_response(endpoint.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/paid"


@pytest.fixture
def summary(monkeypatch: pytest.MonkeyPatch) -> Iterator[SummaryEndpoint]:
    endpoint = SummaryEndpoint()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HOOKBIRD_EXAMPLE_SUMMARY_URL", endpoint.url)
    yield endpoint
    endpoint.server.shutdown()
    endpoint.server.server_close()
    thread.join(5)


def test_a_paid_invoice_is_fetched_and_forwarded(summary: SummaryEndpoint) -> None:
    """The handler fetches the invoice from Moneybird and posts its summary, keyed for retries."""
    moneybird = FakeMoneybird()
    invoice = moneybird.add(
        "sales_invoices",
        {"invoice_id": "2026-0001", "state": "paid", "total_price_incl_tax": "121.0"},
    )
    event = make_event("sales_invoice_state_changed_to_paid", entity=invoice)
    ctx = make_context(event, moneybird=moneybird, handler=post_paid_summary)
    post_paid_summary(event, ctx)
    assert moneybird.count("GET", f"/sales_invoices/{invoice['id']}.json") == 1
    [(headers, sent)] = summary.received
    assert headers["Idempotency-Key"] == ctx.idempotency_key
    assert sent["invoice_id"] == "2026-0001"
    assert sent["moneybird_id"] == invoice["id"]
    assert sent["total"] == "121.0"


def test_a_failing_summary_endpoint_asks_for_a_retry(summary: SummaryEndpoint) -> None:
    """A 5xx from our own endpoint is RetryLater in a minute, not a dead letter."""
    summary.status = 503
    moneybird = FakeMoneybird()
    event = make_event(
        "sales_invoice_state_changed_to_paid",
        entity=moneybird.add("sales_invoices", {"invoice_id": "2026-0002", "state": "paid"}),
    )
    with pytest.raises(RetryLater) as retry:
        post_paid_summary(event, make_context(event, moneybird=moneybird))
    assert retry.value.after == 60


def test_without_a_summary_url_nothing_is_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unconfigured, the handler warns and spends none of the Moneybird budget."""
    monkeypatch.delenv("HOOKBIRD_EXAMPLE_SUMMARY_URL", raising=False)
    moneybird = FakeMoneybird()
    event = make_event("sales_invoice_state_changed_to_paid")
    with capture_logs() as logs:
        post_paid_summary(event, make_context(event, moneybird=moneybird))
    assert moneybird.requests == []
    assert [e["log_level"] for e in logs] == ["warning"]


def test_contacts_are_upserted_from_the_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """contact_created then contact_changed leave one row with the newer values."""
    monkeypatch.delenv("HOOKBIRD_EXAMPLE_DB", raising=False)
    settings = Settings(data_dir=tmp_path)
    contact = {"id": "4180", "firstname": "Ada", "email": "ada@example.org", "version": 1}
    for action, changes in [
        ("contact_created", {}),
        ("contact_changed", {"email": "ada@vogel.example", "version": 2}),
    ]:
        event = make_event(action, entity={**contact, **changes})
        upsert_contact(event, make_context(event, settings=settings))
    with closing(sqlite3.connect(tmp_path / "hookbird-example.sqlite3")) as db:
        rows = db.execute("SELECT id, firstname, email, version FROM contacts").fetchall()
    assert rows == [("4180", "Ada", "ada@vogel.example", 2)]
