"""Typo suggestions: one function, so `hookbird send` and `router.on` guess alike."""

from __future__ import annotations

import pytest

from hookbird import Router, catalog, pushes
from hookbird.routing import UnknownEventWarning


@pytest.mark.parametrize("typo", ["invoice_paid", "contact_create", "sales_invoice_paid"])
def test_send_and_router_suggest_the_same_event_first(typo: str) -> None:
    """The first name `hookbird send` offers is the first a route's warning offers."""
    with pytest.raises(pushes.UnknownEvent) as refused:
        pushes.check_action(typo)
    with pytest.warns(UnknownEventWarning) as warned:
        Router().on(typo)(lambda event, ctx: None)
    first = refused.value.suggestions[0]
    assert str(warned[0].message).split("did you mean ", 1)[1].startswith(first)
    assert catalog.suggest(typo)[0] == first


def test_words_typed_come_before_spellings() -> None:
    """Every word typed beats a similar spelling; a push is never offered a group."""
    assert catalog.suggest("invoice_paid")[0] == "sales_invoice_state_changed_to_paid"
    assert catalog.suggest("contact_create")[0] == "contact_created"
    assert all(name in catalog.events() for name in pushes.suggestions("contct"))


def test_matches_an_event_itself_a_group_at_a_word_boundary_and_star_everything() -> None:
    """An official event matches only itself; a group (official or not) the actions that
    continue it after ``_``; ``*`` every action."""
    assert catalog.matches("*", "anything_at_all")
    assert catalog.matches("contact_created", "contact_created")
    assert not catalog.matches("contact_created", "contact_created_from_checkout_order")
    assert catalog.matches("sales_invoice", "sales_invoice_created")
    assert catalog.matches("sales_invoice", "sales_invoice")
    assert not catalog.matches("sales_invoice", "sales_invoicex_created")
    assert not catalog.matches("contact", "sales_invoice_created")
    assert catalog.matches("custom_thing", "custom_thing_done")


def test_is_known_means_an_official_event_or_group_or_star() -> None:
    """``*``, official events and official groups are known; typos are not."""
    assert catalog.is_known("*")
    assert catalog.is_known("contact_created")
    assert catalog.is_known("sales_invoice")
    assert "sales_invoice" in catalog.groups()
    assert "sales_invoice" not in catalog.events()
    assert not catalog.is_known("sales_invoice_creatd")
    assert not catalog.is_known("")


def test_suggest_offers_three_names_and_groups_unless_told_not_to() -> None:
    """Three suggestions by default; the words typed in another order find the group they
    name, which a push's action (``with_groups=False``) is never offered."""
    assert len(catalog.suggest("invoice_paid")) == 3
    assert catalog.suggest("invoice_sales")[0] == "sales_invoice"
    offered = catalog.suggest("invoice_sales", with_groups=False)
    assert offered
    assert not set(offered) & set(catalog.groups())
