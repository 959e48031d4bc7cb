"""The fake Moneybird is as strict as the real one where hookbird's tests rely on it."""

from __future__ import annotations

import httpx2

from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_requires_a_bearer_token(fake: FakeMoneybird) -> None:
    """No or a wrong token: 401."""
    url = f"{fake.api_url}/{ADMINISTRATION}/contacts.json"
    assert httpx2.get(url).status_code == 401
    assert httpx2.get(url, headers={"Authorization": "Bearer nope-nope-nope"}).status_code == 401
    assert httpx2.get(url, headers=AUTH).status_code == 200


def test_requires_the_json_suffix(fake: FakeMoneybird) -> None:
    """A path without .json is not found."""
    assert httpx2.get(f"{fake.api_url}/{ADMINISTRATION}/contacts", headers=AUTH).status_code == 404


def test_per_page_is_capped_at_100(fake: FakeMoneybird) -> None:
    """per_page above 100 is refused."""
    url = f"{fake.api_url}/{ADMINISTRATION}/contacts.json?per_page=101"
    assert httpx2.get(url, headers=AUTH).status_code == 400


def test_webhook_create_refuses_the_removed_events_field(fake: FakeMoneybird) -> None:
    """{"events": [...]} is refused; enabled_events is the field."""
    url = f"{fake.api_url}/{ADMINISTRATION}/webhooks.json"
    body = {"url": "http://127.0.0.1:9/x", "events": ["contact_created"]}
    assert httpx2.post(url, json=body, headers=AUTH).status_code == 400


def test_rate_limit_answers_retry_later_with_moneybirds_headers() -> None:
    """Over the limit: 429 'Retry later', an epoch Retry-After and RateLimit-* headers."""
    with FakeMoneybird(limit=1, window=30).serve() as fake:
        url = f"{fake.api_url}/administrations.json"
        first = httpx2.get(url, headers=AUTH)
        assert first.headers["RateLimit-Limit"] == "1"
        assert first.headers["RateLimit-Remaining"] == "0"
        second = httpx2.get(url, headers=AUTH)
    assert second.status_code == 429
    assert second.text == "Retry later"
    assert int(second.headers["Retry-After"]) > 1e9
    assert int(second.headers["RateLimit-Reset"]) > 1e9
