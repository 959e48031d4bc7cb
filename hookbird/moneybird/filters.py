"""Moneybird's ``filter`` query parameter, built from a dict; pure functions, no I/O.

Moneybird filters list and synchronization endpoints with one string of ``key:value``
terms separated by commas, alternatives separated by a pipe and custom periods
written as compact date ranges::

    {"state": ["open", "late"], "period": ("2020-01-01", "2026-12-31")}
    → "state:open|late,period:20200101..20261231"

:func:`build` makes that string and refuses, with a :class:`ValueError` that names the
key, anything Moneybird would read differently from what was meant: a comma inside a
value (it would start a new term), a colon or pipe inside a key, a pipe inside one of
a list's values, an unknown period word, a range that ends before it starts. A colon
inside a value is fine: Moneybird splits each term at its first colon, and the spec's
own examples send ``updated_after:2026-08-21 13:48:40 UTC``.

Why the period matters: any filter replaces Moneybird's defaults entirely, and on the
resources below the default ``period`` is ``this_year`` (the spec, v2-20260821, in
each endpoint's filter description; their synchronization endpoints share the
syntax). A listing or ``sync()`` without a period there silently leaves out every
older record. The hand-written resources warn once per process
(:class:`DefaultPeriodWarning`) unless a period is given; pass
``period="this_year"`` to say the default is what you want.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from hookbird.logs import get_logger

log = get_logger("moneybird.filters")

#: The named periods Moneybird understands (relative to today, in the administration).
PERIOD_WORDS = frozenset(
    f"{when}_{unit}"
    for when in ("this", "prev", "next")
    for unit in ("week", "month", "quarter", "year")
)

#: API paths (below the administration) whose listing and synchronization endpoints
#: default to ``period:this_year``: older records are left out unless a period is given.
THIS_YEAR_DEFAULT = frozenset(
    {
        "sales_invoices",
        "estimates",
        "external_sales_invoices",
        "financial_mutations",
        "time_entries",
        "documents/general_documents",
        "documents/general_journal_documents",
        "documents/purchase_invoices",
        "documents/receipts",
        "documents/typeless_documents",
    }
)

_KEY = re.compile(r"[a-z][a-z0-9_]*")
_RANGE = re.compile(r"(\d{6}\.\.\d{6}|\d{8}\.\.\d{8})")
_DAY = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_MONTH = re.compile(r"(\d{4})-?(\d{2})")


_warned: set[str] = set()  # resources whose default period was warned about in this process


class DefaultPeriodWarning(UserWarning):
    """A listing on a resource whose default period (``this_year``) hides older records."""


def check_period(
    path: str, filter: str | Mapping[str, object] | None, *, stacklevel: int = 2
) -> None:
    """Warn (once per process and resource) when a listing of ``path`` (below the
    administration: ``sales_invoices``, ``documents/receipts/synchronization``) names
    no period where Moneybird's default leaves older records out; log it too."""
    resource = path.strip("/").removesuffix(".json").removesuffix("/synchronization")
    if resource not in THIS_YEAR_DEFAULT or has_period(filter) or resource in _warned:
        return
    _warned.add(resource)
    log.warning("moneybird_default_period", resource=resource, default="this_year")
    warnings.warn(
        f"{resource} lists only this year's records unless a period is given (Moneybird's "
        'default): pass period="this_year" to keep that, or a range such as '
        'period=("2020-01-01", "2026-12-31")',
        DefaultPeriodWarning,
        stacklevel=stacklevel + 1,
    )


def build(filters: Mapping[str, object]) -> str:
    """Moneybird's filter string for ``filters``; keys whose value is None are left out.

    Values: ``str`` as given, ``int``, ``bool`` (``true``/``false``), ``date``
    (``2026-01-31``), timezone-aware ``datetime`` (ISO 8601 in UTC), a ``list``/``set``
    of those (alternatives, ``open|late``), or a ``(start, end)`` tuple of dates
    (``date`` or ``"2026-01-31"``/``"20260131"``, or months ``"2026-01"``) for a
    custom period. ``period`` must be a named period or a range.
    """
    terms = []
    for key, value in filters.items():
        if value is None:
            continue
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(
                f"filter key {key!r} is not a Moneybird filter name (lowercase letters, "
                "digits and underscores; no comma, colon or pipe)"
            )
        terms.append(f"{key}:{_value(key, value)}")
    return ",".join(terms)


def has_period(filter: str | Mapping[str, object] | None) -> bool:
    """Does ``filter`` (a built string or a dict) name a period of its own?"""
    if filter is None:
        return False
    if isinstance(filter, str):
        return any(term.partition(":")[0].strip() == "period" for term in filter.split(","))
    return filter.get("period") is not None


def _value(key: str, value: object) -> str:
    if isinstance(value, tuple):
        return _range(key, value)
    if isinstance(value, list | set | frozenset):
        if not value:
            raise ValueError(f"filter {key!r} has an empty list: leave the key out instead")
        items = [_scalar(key, item) for item in value]
        if isinstance(value, set | frozenset):
            items.sort()  # the same filter string every run
        for item in items:
            if "|" in item:
                raise ValueError(
                    f"filter {key!r}: {item!r} contains '|', which separates alternatives"
                )
        return "|".join(items)
    text = _scalar(key, value)
    if key == "period" and text not in PERIOD_WORDS and not _RANGE.fullmatch(text):
        words = ", ".join(sorted(PERIOD_WORDS))
        raise ValueError(
            f"filter 'period' must be one of {words}, a range such as "
            f"20200101..20261231, or a (start, end) tuple of dates; got {text!r}"
        )
    return text


def _scalar(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"filter {key!r}: give a timezone-aware datetime (Moneybird compares in UTC)"
            )
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(
            f"filter {key!r}: cannot send a {type(value).__name__}; give a str, int, bool, "
            "date, datetime, a list of those, or a (start, end) tuple"
        )
    if not value:
        raise ValueError(f"filter {key!r} is empty: leave the key out instead")
    if "," in value:
        raise ValueError(f"filter {key!r}: {value!r} contains ',', which separates filter terms")
    return value


def _range(key: str, value: tuple[Any, ...]) -> str:
    if len(value) != 2:
        raise ValueError(f"filter {key!r}: a range is a (start, end) pair, got {len(value)} items")
    start, end = (_range_end(key, part) for part in value)
    if len(start) != len(end):
        raise ValueError(
            f"filter {key!r}: both ends of a range must be days or both months, "
            f"got {value[0]!r} and {value[1]!r}"
        )
    if start > end:
        raise ValueError(f"filter {key!r}: the range ends ({value[1]!r}) before it starts")
    return f"{start}..{end}"


def _range_end(key: str, part: object) -> str:
    if isinstance(part, datetime):
        raise ValueError(f"filter {key!r}: a range takes dates, not datetimes ({part!r})")
    if isinstance(part, date):
        return part.strftime("%Y%m%d")
    if isinstance(part, str):
        if day := _DAY.fullmatch(part):
            found = "".join(day.groups())
            try:
                datetime.strptime(found, "%Y%m%d")
            except ValueError:
                raise ValueError(f"filter {key!r}: {part!r} is not a date") from None
            return found
        if (month := _MONTH.fullmatch(part)) and 1 <= int(month.group(2)) <= 12:
            return "".join(month.groups())
    raise ValueError(
        f"filter {key!r}: a range end is a date or 'YYYY-MM-DD' / 'YYYYMMDD' "
        f"(or a month 'YYYY-MM'), got {part!r}"
    )
