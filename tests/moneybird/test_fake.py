"""The fake Moneybird is as strict as the real one where hookbird's tests rely on it."""

from __future__ import annotations

import time

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


def _sync(fake: FakeMoneybird, resource: str, **params: str) -> httpx2.Response:
    url = f"{fake.api_url}/{ADMINISTRATION}/{resource}/synchronization.json"
    return httpx2.get(url, params=params, headers=AUTH)


def test_changed_records_get_a_later_version_and_removed_ones_disappear(
    fake: FakeMoneybird,
) -> None:
    """change() gives a record a later version; remove() takes it out of the listing."""
    kept = fake.add("contacts", {"company_name": "Kept", "version": 100})
    gone = fake.add("contacts", {"company_name": "Gone", "version": 100})
    changed = fake.change("contacts", kept["id"], company_name="Changed")
    fake.remove("contacts", gone["id"])
    assert changed["version"] > 100
    listed = _sync(fake, "contacts").json()
    assert listed == [{"id": kept["id"], "version": changed["version"]}]


def test_invoices_default_to_this_year_until_a_filter_names_a_period(fake: FakeMoneybird) -> None:
    """No filter: only this year's invoices; a filter without a period keeps that default
    (the stricter reading of the spec's "any filter replaces the defaults"); a period
    range reaches back."""
    year = time.gmtime().tm_year
    old = fake.add("sales_invoices", {"invoice_date": f"{year - 3}-05-01"})
    new = fake.add("sales_invoices", {"invoice_date": f"{year}-01-02"})
    draft = fake.add("sales_invoices", {"state": "draft"})  # no invoice_date: dated today

    def ids(response: httpx2.Response) -> set[str]:
        return {item["id"] for item in response.json()}

    assert ids(_sync(fake, "sales_invoices")) == {new["id"], draft["id"]}
    everything = {old["id"], new["id"], draft["id"]}
    assert ids(_sync(fake, "sales_invoices", filter="state:all")) == {new["id"], draft["id"]}
    wide = _sync(fake, "sales_invoices", filter=f"period:19000101..{year + 1}1231,state:all")
    assert ids(wide) == everything
    assert ids(_sync(fake, "sales_invoices", filter="period:prev_year")) == set()
    assert _sync(fake, "sales_invoices", filter="period:someday").status_code == 400


def test_updated_after_keeps_records_changed_since(fake: FakeMoneybird) -> None:
    """updated_after (exclusive, ISO 8601) shows only records changed after it."""
    quiet = fake.add("contacts", {"version": 1_700_000_000})
    busy = fake.add("contacts", {"version": 1_700_000_000})
    fake.change("contacts", busy["id"])
    found = _sync(fake, "contacts", filter="updated_after:2024-01-01T00:00:00Z").json()
    assert [item["id"] for item in found] == [busy["id"]]
    assert quiet["id"] not in {item["id"] for item in found}


def test_archived_contacts_show_only_when_asked_for(fake: FakeMoneybird) -> None:
    """include_archived=true adds archived contacts to the synchronization listing."""
    archived = fake.add("contacts", {"archived": True})
    assert archived["id"] not in {i["id"] for i in _sync(fake, "contacts").json()}
    listed = _sync(fake, "contacts", include_archived="true").json()
    assert archived["id"] in {i["id"] for i in listed}


def test_synchronization_post_takes_at_most_100_ids(fake: FakeMoneybird) -> None:
    """POST …/synchronization refuses more than 100 ids rather than answering part."""
    url = f"{fake.api_url}/{ADMINISTRATION}/contacts/synchronization.json"
    ids = [fake.add("contacts", {})["id"] for _ in range(101)]
    assert httpx2.post(url, json={"ids": ids}, headers=AUTH).status_code == 400
    assert len(httpx2.post(url, json={"ids": ids[:100]}, headers=AUTH).json()) == 100


def test_webhooks_show_their_last_status_and_stay_silent_when_deactivated(
    fake: FakeMoneybird,
) -> None:
    """set_webhook changes last_http_status; a deactivated webhook delivers nothing."""
    url = f"{fake.api_url}/{ADMINISTRATION}/webhooks.json"
    hook = fake.add("webhooks", {"url": "http://127.0.0.1:9/x", "token": "t", "secret": "s"})
    fake.set_webhook(hook["id"], last_http_status=500)
    assert httpx2.get(url, headers=AUTH).json()[0]["last_http_status"] == 500
    deactivate = f"{fake.api_url}/{ADMINISTRATION}/webhooks/{hook['id']}/deactivate.json"
    assert httpx2.patch(deactivate, headers=AUTH).status_code == 204
    assert fake.push(hook["id"], "contact_changed", "Contact", {"id": "1"}) == 0
    assert fake.pushes == []
