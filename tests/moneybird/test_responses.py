"""The pure response readers: errors, retry times, rate headers, Link pagination."""

from __future__ import annotations

import pytest

from hookbird.moneybird import errors
from hookbird.moneybird.responses import (
    RateHeaders,
    decode_body,
    error_for,
    header_time,
    next_link,
    stringify_ids,
)

NOW = 1_800_000_000.0


def test_large_header_value_is_an_epoch() -> None:
    """A Retry-After of 1e9 or more is an absolute epoch time."""
    assert header_time("1800000042", NOW) == 1_800_000_042.0


def test_small_header_value_is_seconds_from_now() -> None:
    """A small Retry-After counts seconds from now."""
    assert header_time("30", NOW) == NOW + 30


@pytest.mark.parametrize("raw", [None, "", "soon", "-5"])
def test_unreadable_header_value_is_none(raw: str | None) -> None:
    """Garbage in Retry-After is ignored rather than guessed."""
    assert header_time(raw, NOW) is None


def test_next_link_among_several_relations() -> None:
    """rel="next" is found among prev/next links, quoted or not."""
    header = (
        '<https://moneybird.com/api/v2/1/contacts.json?page=1&per_page=100>; rel="prev", '
        '<https://moneybird.com/api/v2/1/contacts.json?page=3&per_page=100>; rel="next"'
    )
    assert next_link(header) == "https://moneybird.com/api/v2/1/contacts.json?page=3&per_page=100"
    assert next_link("<https://x/a?page=2>; rel=next") == "https://x/a?page=2"


def test_no_next_link_on_last_page() -> None:
    """Only a prev link (or none) means the last page."""
    assert next_link('<https://x/a?page=1>; rel="prev"') is None
    assert next_link(None) is None


def test_remaining_zero_with_future_reset_exhausts() -> None:
    """RateLimit-Remaining is believed only when it says 0 with a future reset."""
    headers = {"ratelimit-remaining": "0", "ratelimit-reset": str(int(NOW) + 40)}
    assert RateHeaders.parse(headers, NOW).exhausted_until(NOW) == NOW + 40
    headers = {"ratelimit-remaining": "3", "ratelimit-reset": str(int(NOW) + 40)}
    assert RateHeaders.parse(headers, NOW).exhausted_until(NOW) is None


def test_429_carries_the_servers_epoch_retry_time() -> None:
    """A 429 becomes RateLimited with retry_at from an epoch Retry-After."""
    error = error_for(
        429,
        method="GET",
        path="/1/contacts.json",
        body="Retry later",
        headers={"retry-after": str(int(NOW) + 77)},
        now=NOW,
    )
    assert isinstance(error, errors.RateLimited)
    assert error.retry_at == NOW + 77
    assert error.body == "Retry later"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.BadRequest),
        (401, errors.Unauthorized),
        (402, errors.PaymentRequired),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (422, errors.Unprocessable),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.PermanentError),
    ],
)
def test_status_maps_to_the_error_tree(status: int, kind: type[errors.MoneybirdError]) -> None:
    """Each status lands on its branch of the error tree, with method and path."""
    error = error_for(status, method="POST", path="/1/x.json", body=None, headers={}, now=NOW)
    assert type(error) is kind
    assert (error.status_code, error.method, error.path) == (status, "POST", "/1/x.json")


def test_bad_request_keeps_moneybirds_fields() -> None:
    """400 keeps Moneybird's error and symbolic fields."""
    body = {"error": "Validation failed", "symbolic": {"ids": "too_long"}}
    error = error_for(400, method="POST", path="/p", body=body, headers={}, now=NOW)
    assert isinstance(error, errors.BadRequest)
    assert error.error == "Validation failed"
    assert error.symbolic == {"ids": "too_long"}


def test_success_is_no_error_and_body_decides_json() -> None:
    """2xx is not an error; JSON is parsed whatever the content type says."""
    assert error_for(204, method="GET", path="/p", body=None, headers={}, now=NOW) is None
    assert decode_body(b'[{"id": "1"}]', "text/plain") == [{"id": "1"}]
    assert decode_body(b"Retry later", "application/json") == "Retry later"


def test_numeric_ids_become_strings_and_other_numbers_stay() -> None:
    """id, *_id and *_ids numbers become str at any depth; prices and flags do not."""
    raw = {
        "id": 496081407814141080,
        "administration_id": 123,
        "price": 100,
        "paid": True,
        "tax_rate_ids": [1, "2"],
        "details": [{"id": 5, "ledger_account_id": 7, "amount": 3}],
    }
    assert stringify_ids(raw) == {
        "id": "496081407814141080",
        "administration_id": "123",
        "price": 100,
        "paid": True,
        "tax_rate_ids": ["1", "2"],
        "details": [{"id": "5", "ledger_account_id": "7", "amount": 3}],
    }
