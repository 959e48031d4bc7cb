"""label(): what hookbird writes into RQ jobs, where rq-dashboard shows it unescaped."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hookbird import catalog
from hookbird.labels import MAX_LABEL, label


def test_markup_becomes_plain_text() -> None:
    """Every character outside [A-Za-z0-9_.:-] is replaced: no tag, quote or space survives."""
    assert label("<img src=x onerror=alert(1)>") == "_img_src_x_onerror_alert_1__"
    assert label("\"'&;/ é\n") == "_" * 8


def test_moneybird_names_and_ids_are_kept() -> None:
    """Every event name Moneybird sends, entity types and IDs read exactly as before."""
    for name in catalog.events():
        assert label(name) == name
    assert label("SalesInvoice") == "SalesInvoice"
    assert label("4180000000000000001") == "4180000000000000001"
    assert label("tests.workers.sample_handlers:sync_contact") == (
        "tests.workers.sample_handlers:sync_contact"
    )
    assert label(None) == ""


@given(st.text(max_size=500))
def test_any_text_becomes_a_short_safe_label(value: str) -> None:
    """Whatever a push carries, the label is at most MAX_LABEL safe characters."""
    result = label(value)
    assert len(result) <= MAX_LABEL
    assert all(c.isascii() and (c.isalnum() or c in "_.:-") for c in result)
