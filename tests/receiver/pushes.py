"""Realistic Moneybird pushes and signatures for the receiver tests."""

from __future__ import annotations

import json
import time
from typing import Any

from hookbird.signing import sign

TOKEN = "test-webhook-token-0123456789"
SECRET = "test-signing-secret-abcdefghij"
#: HOOKBIRD_SECRET_KEY for stored signing secrets (a valid Fernet key, used only here).
SECRET_KEY = "aG9va2JpcmQgdGVzdHM6IG5vdCBhIHJlYWwga2V5ISE="


def push_body(**fields: Any) -> bytes:
    """A realistic Moneybird push, about 1 KB."""
    data: dict[str, Any] = {
        "administration_id": "123456789",
        "webhook_id": "4180000000000000001",
        "webhook_token": TOKEN,
        "entity_type": "SalesInvoice",
        "entity_id": "496081234567890123",
        "state": "paid",
        "action": "sales_invoice_state_changed_to_paid",
        "entity": {
            "id": "496081234567890123",
            "administration_id": "123456789",
            "contact_id": "496081200000000001",
            "invoice_id": "2026-0042",
            "state": "paid",
            "total_price_incl_tax": "121.0",
            "currency": "EUR",
            "version": 1790000000,
            "details": [{"id": "1", "description": "Consultancy", "price": "100.0"}],
        },
    }
    data.update(fields)
    return json.dumps(data).encode()


def as_stored(body: bytes, token: str = TOKEN) -> bytes:
    """A push body as the receiver stores it: the same bytes with the token blanked."""
    field = b'"webhook_token": "%s"' % token.encode()
    assert body.count(field) == 1, "a body json.dumps made, with this token"
    return body.replace(field, b'"webhook_token": ""')


def signature_header(body: bytes, secret: str = SECRET, t: int | None = None) -> str:
    stamp = int(time.time()) if t is None else t
    return f"t={stamp},v1={sign(body, secret, stamp)}"
