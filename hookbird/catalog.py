"""Moneybird's official webhook event names and event groups.

The list ships with hookbird (``hookbird/data/webhook_events.md``, copied from
Moneybird's public openapi repository). An event group such as ``sales_invoice``
or ``contact`` matches every event whose name starts with it. Pushes with names
outside the list are still accepted and routed; only subscriptions naming an
unknown event get a warning, with the closest real names.
"""

from __future__ import annotations

import difflib
import re
from functools import cache
from importlib import resources

_EVENT_ROW = re.compile(r"^\|\s*([a-z0-9_]+)\s*\|\s*(.*?)\s*\|\s*$")
_GROUP_ROW = re.compile(r"^-\s*`([a-z0-9_]+)`\s*$")


@cache
def _parse() -> tuple[dict[str, str], tuple[str, ...]]:
    text = resources.files("hookbird").joinpath("data/webhook_events.md").read_text("utf-8")
    events: dict[str, str] = {}
    groups: list[str] = []
    for line in text.splitlines():
        if match := _EVENT_ROW.match(line):
            events[match[1]] = match[2]
        elif match := _GROUP_ROW.match(line):
            groups.append(match[1])
    return events, tuple(groups)


def events() -> dict[str, str]:
    """Every official event name with Moneybird's one-line explanation."""
    return dict(_parse()[0])


def groups() -> tuple[str, ...]:
    """Every official event group."""
    return _parse()[1]


def is_known(name: str) -> bool:
    """An official event name, an official group, or ``*``."""
    found_events, found_groups = _parse()
    return name == "*" or name in found_events or name in found_groups


def matches(pattern: str, action: str) -> bool:
    """Does a subscription or route pattern (event, group or ``*``) cover this action?

    An official event name matches only itself (``contact_created`` must not catch
    ``contact_created_from_checkout_order``); anything else is a group and matches
    the actions that start with it, at a ``_`` boundary.
    """
    if pattern == "*" or action == pattern:
        return True
    if pattern in _parse()[0]:
        return False
    return action.startswith(pattern + "_")


def suggest(name: str, limit: int = 3, *, with_groups: bool = True) -> list[str]:
    """The official names closest to a typo, best first: the one place that guesses.

    Names holding every word typed come first, shortest first (``invoice_paid`` →
    ``sales_invoice_state_changed_to_paid``), then the closest spellings
    (``contact_create`` → ``contact_created``). ``with_groups=False`` for a push's
    action, which must be an event, not a group.
    """
    found_events, found_groups = _parse()
    names = [*found_events, *found_groups] if with_groups else list(found_events)
    words = set(name.split("_"))
    containing = sorted((n for n in names if n != name and words <= set(n.split("_"))), key=len)
    close = difflib.get_close_matches(name, names, n=limit, cutoff=0.6)
    return list(dict.fromkeys([*containing, *close]))[:limit]
