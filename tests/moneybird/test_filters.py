"""Filters: dicts become Moneybird's filter strings, and listings that would hide older
records without a period say so."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from hookbird.moneybird import Client, filters
from hookbird.moneybird.filters import DefaultPeriodWarning, build
from tests.fake_moneybird import FakeMoneybird


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    """Each test starts as a fresh process would: nothing warned about yet."""
    filters._warned.clear()
    yield
    filters._warned.clear()


def test_build_the_issues_example() -> None:
    """state and a date range: the range is compact days joined by '..'."""
    built = build({"state": "open", "period": ("2020-01-01", "2026-12-31")})
    assert built == "state:open,period:20200101..20261231"


def test_lists_become_alternatives_and_none_is_left_out() -> None:
    """A list is joined with '|'; a None value drops the key."""
    assert build({"state": ["open", "late"], "contact_id": None}) == "state:open|late"
    assert build({"tax_rate_type": {"sales_invoice", "purchase_invoice"}}) == (
        "tax_rate_type:purchase_invoice|sales_invoice"
    )


def test_scalars_dates_and_datetimes() -> None:
    """ints, bools, dates (ISO) and aware datetimes (UTC, ISO 8601) as Moneybird reads them."""
    amsterdam = timezone(timedelta(hours=2))
    built = build(
        {
            "contact_id": 496081407814141080,
            "include_active": True,
            "show_tax": False,
            "day": date(2026, 3, 1),
            "updated_after": datetime(2026, 8, 21, 15, 48, 40, tzinfo=amsterdam),
        }
    )
    assert built == (
        "contact_id:496081407814141080,include_active:true,show_tax:false,"
        "day:2026-03-01,updated_after:2026-08-21T13:48:40Z"
    )


def test_ranges_of_dates_objects_compact_strings_and_months() -> None:
    """Both range ends may be date objects or strings; months give YYYYMM..YYYYMM."""
    assert build({"period": (date(2013, 1, 1), date(2013, 1, 31))}) == "period:20130101..20130131"
    assert build({"period": ("20130101", "2013-01-31")}) == "period:20130101..20130131"
    assert build({"period": ("2013-01", "201302")}) == "period:201301..201302"


def test_period_words_and_range_strings_pass() -> None:
    """Every named period and a range written out are accepted as they are."""
    for word in filters.PERIOD_WORDS:
        assert build({"period": word}) == f"period:{word}"
    assert build({"period": "20200101..20261231"}) == "period:20200101..20261231"
    assert len(filters.PERIOD_WORDS) == 12


def test_colon_in_a_value_is_kept() -> None:
    """Moneybird splits a term at its first colon; the spec's own example has colons."""
    assert build({"updated_after": "2026-08-21 13:48:40 UTC"}) == (
        "updated_after:2026-08-21 13:48:40 UTC"
    )


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ({"reference": "a,b"}, "contains ','"),
        ({"state": ["open", "late,paid"]}, "contains ','"),
        ({"state": ["open|late"]}, "contains '|'"),
        ({"sta:te": "open"}, "not a Moneybird filter name"),
        ({"state,period": "open"}, "not a Moneybird filter name"),
        ({"state": []}, "empty list"),
        ({"state": ""}, "is empty"),
        ({"period": "last_year"}, "must be one of"),
        ({"period": "2020-01-01..2026-12-31"}, "must be one of"),
        ({"period": ("2026-12-31", "2020-01-01")}, "ends"),
        ({"period": ("2026-01", "2026-12-31")}, "days or both months"),
        ({"period": ("2026-02-30", "2026-03-01")}, "not a date"),
        ({"period": ("2026-01-01",)}, "pair"),
        ({"period": (datetime(2026, 1, 1, tzinfo=UTC), date(2026, 2, 1))}, "not datetimes"),
        ({"updated_after": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"amount_from": 1.5}, "cannot send a float"),
    ],
)
def test_what_would_break_the_format_raises(given: dict[str, object], complaint: str) -> None:
    """Values Moneybird would read differently are refused with a ValueError naming why."""
    with pytest.raises(ValueError, match=complaint):
        build(given)


def test_has_period_reads_strings_and_dicts() -> None:
    assert filters.has_period("state:open, period:this_year")
    assert not filters.has_period("state:open")
    assert filters.has_period({"period": "prev_year"})
    assert not filters.has_period({"period": None, "state": "open"})
    assert not filters.has_period(None)


def test_the_table_matches_the_spec_copy() -> None:
    """Every resource whose filter description in the spec defaults period to this_year
    is in THIS_YEAR_DEFAULT, and the other way round."""
    spec_path = Path(__file__).resolve().parents[2] / "spec" / "moneybird" / "openapi.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    found = set()
    for path, operations in spec["paths"].items():
        get = operations.get("get", {})
        for parameter in get.get("parameters", []):
            described = parameter.get("description", "")
            if parameter.get("name") == "filter" and "| `this_year` |" in described:
                name = path.split("/", 2)[2].removesuffix("{format}").removesuffix(".json")
                found.add(name.removesuffix("/synchronization"))
    assert len(found) >= 6, "the spec lost its filter descriptions"
    assert found <= filters.THIS_YEAR_DEFAULT


# -- through the client and the fake Moneybird -------------------------------------------


def test_a_dict_filter_reaches_moneybird_as_its_string(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """The client turns a dict filter into Moneybird's string, period included."""
    list(
        client.administration(admin_id).sales_invoices.list(
            filter={"state": ["open", "late"]}, period=("2020-01-01", "2026-12-31")
        )
    )
    assert fake.requests[-1].params["filter"] == "state:open|late,period:20200101..20261231"


def test_raw_request_params_take_a_dict_filter(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """request() (what generated methods call) encodes a dict filter the same way."""
    client.request("GET", f"/{admin_id}/contacts", params={"filter": {"first_name": "henk"}})
    assert fake.requests[-1].params == {"filter": "first_name:henk"}


def test_an_explicit_period_finds_older_invoices(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """Without a period Moneybird shows this year only; a range brings back the old ones."""
    this_year = date.today().replace(month=1, day=1)
    old = fake.add("sales_invoices", {"invoice_date": "2021-06-01", "state": "open"})
    new = fake.add("sales_invoices", {"invoice_date": this_year.isoformat(), "state": "open"})
    invoices = client.administration(admin_id).sales_invoices
    with pytest.warns(DefaultPeriodWarning):
        assert [i["id"] for i in invoices.list()] == [new["id"]]
    wide = ("2020-01-01", f"{this_year.year}-12-31")
    assert [i["id"] for i in invoices.list(period=wide)] == [old["id"], new["id"]]
    assert [s["id"] for s in invoices.sync(filter={"state": "open"}, period=wide)] == [
        old["id"],
        new["id"],
    ]
    assert [i["id"] for i in invoices.list(filter="period:prev_year,state:open")] == []


def test_warns_once_per_resource_and_logs_why(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """The first listing of a this_year resource without a period warns and logs; later
    ones of that resource stay quiet; another resource warns on its own."""
    administration = client.administration(admin_id)
    with warnings.catch_warnings(record=True) as seen, capture_logs() as logs:
        warnings.simplefilter("always")
        list(administration.sales_invoices.list(filter={"state": "open"}))
        administration.sales_invoices.sync()
        list(administration.sales_invoices.list())
        list(administration.receipts.list())
    assert all(issubclass(w.category, DefaultPeriodWarning) for w in seen)
    assert "this year" in str(seen[0].message)
    assert len(seen) == 2
    assert seen[0].filename == __file__  # points at the caller's line
    assert [e["resource"] for e in logs if e["event"] == "moneybird_default_period"] == [
        "sales_invoices",
        "documents/receipts",
    ]


def test_contacts_and_explicit_periods_do_not_warn(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """Contacts have no period; a period in the string or as period= is explicit."""
    administration = client.administration(admin_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(administration.contacts.list())
        administration.contacts.sync()
        list(administration.sales_invoices.list(filter="period:this_year"))
        list(administration.estimates.list(period="this_year"))
        administration.purchase_invoices.changed_since({}, period="prev_year")


def test_period_given_twice_is_refused(client: Client, admin_id: str) -> None:
    """A period both in filter and as period= is ambiguous: ValueError, nothing sent."""
    invoices = client.administration(admin_id).sales_invoices
    with pytest.raises(ValueError, match="period once"):
        invoices.sync(filter="period:this_year", period="prev_year")
    with pytest.raises(ValueError, match="period once"):
        invoices.sync(filter={"period": "this_year"}, period="prev_year")


def test_check_period_reads_paths_as_generated_code_gives_them() -> None:
    """Synchronization paths and .json suffixes name their resource; others never warn."""
    with pytest.warns(DefaultPeriodWarning, match="documents/receipts"):
        filters.check_period("/documents/receipts/synchronization.json", "state:open")
    filters.check_period("documents/receipts", None)  # once per resource: quiet now
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filters.check_period("contacts", None)
        filters.check_period("financial_mutations", {"period": "prev_year"})
