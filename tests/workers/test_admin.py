"""Redaction and display of stored pushes, pure: any depth a push may reach."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from hookbird.logs import SENSITIVE_KEY_PARTS
from workers.admin import pretty_json, redact

DEPTH = 2000

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


def nested(depth: int) -> dict[str, Any]:
    """``{"entity": [{"entity": … {"webhook_token": "secret"} …}]}``, built in a loop."""
    value: dict[str, Any] = {"webhook_token": "secret", "id": 1}
    for level in range(depth):
        value = {"entity": [value]} if level % 2 else {"entity": value}
    return value


def test_redact_blanks_a_token_2000_levels_deep() -> None:
    """Redaction keeps its own stack: a body deeper than Python's recursion limit is copied
    with the token blanked and everything else kept."""
    copied = redact(nested(DEPTH))
    inner = copied
    for level in range(DEPTH):
        inner = inner["entity"][0] if (DEPTH - 1 - level) % 2 else inner["entity"]
    assert inner == {"webhook_token": "[redacted]", "id": 1}


def test_pretty_json_writes_2000_levels() -> None:
    """The display of a push is written without recursion, token blanked, one line per level."""
    shown = pretty_json(redact(nested(DEPTH)))
    assert "secret" not in shown
    assert '"webhook_token": "[redacted]"' in shown
    assert shown.count("\n") > 2 * DEPTH


@given(_json)
def test_pretty_json_is_json_dumps_with_indent_and_sorted_keys(value: Any) -> None:
    """Byte for byte what ``json.dumps(indent=2, sort_keys=True)`` writes."""
    assert pretty_json(value) == json.dumps(value, indent=2, sort_keys=True)


@given(_json)
def test_redact_changes_nothing_without_sensitive_keys(value: Any) -> None:
    """A body without sensitive keys comes back equal (redaction copies, never drops)."""
    if not any(part in json.dumps(value).lower() for part in SENSITIVE_KEY_PARTS):
        assert redact(value) == value
