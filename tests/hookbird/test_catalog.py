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
