"""Parsing a push body into a :class:`Push`, without I/O.

Moneybird posts a JSON object; the Content-Type header is not trusted either way,
the body decides. IDs are 64-bit integers sent as strings, old payloads send plain
integers: both are accepted and kept as ``str``. Anything that is not a JSON object
with a string ``action`` and an ``administration_id`` raises :class:`MalformedPush`,
which the endpoint answers with 400.

Bodies are parsed with orjson, about three times as fast as the standard library
on a typical 2 KB push: parsing was the largest single cost of a push in the
receiver. It reads the bytes as they came (invalid UTF-8 is refused, as are
unpaired surrogates, NaN and Infinity). When it refuses a body, the standard
library's parser is asked again, only to name the reason.

Nesting is capped at :data:`MAX_DEPTH` levels. orjson reads up to 1024, but the
workers' ``json`` module (on Python 3.11) and any handler code that recurses over a
push fail with ``RecursionError`` before that; a Moneybird push is a handful of
levels deep. The depth is only walked when the body holds more than
``MAX_DEPTH`` opening brackets, counted in one pass that keeps only the brackets
(``bytes.translate``; two ``bytes.count`` calls cost a third more on a 2 KB push).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

MAX_ID = 2**64 - 1
MAX_NAME_LENGTH = 200
#: Deepest nesting accepted, the push object itself being level 1 (400 beyond it).
MAX_DEPTH = 64
#: Every byte but the opening brackets, for counting those in one pass.
_ALL_BUT_OPENERS = bytes(byte for byte in range(256) if byte not in b"{[")


class MalformedPush(ValueError):
    """The body is not a push we can read; ``reason`` is short and safe to return."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Push:
    """The fields of a push the receiver needs; ``data`` is the whole parsed object.

    A class with slots rather than a frozen dataclass: building a frozen dataclass
    took a quarter of what parsing a push costs.
    """

    __slots__ = (
        "action",
        "administration_id",
        "data",
        "entity_id",
        "entity_type",
        "state",
        "webhook_id",
        "webhook_token",
    )

    def __init__(
        self,
        action: str,
        administration_id: str,
        webhook_id: str | None,
        webhook_token: str | None,
        entity_type: str | None,
        entity_id: str | None,
        state: str | None,
        data: dict[str, Any],
    ) -> None:
        self.action = action
        self.administration_id = administration_id
        self.webhook_id = webhook_id
        self.webhook_token = webhook_token
        self.entity_type = entity_type
        self.entity_id = entity_id
        self.state = state
        self.data = data

    def __repr__(self) -> str:  # never the token
        return (
            f"Push(action={self.action!r}, administration_id={self.administration_id!r}, "
            f"webhook_id={self.webhook_id!r}, entity_type={self.entity_type!r}, "
            f"entity_id={self.entity_id!r}, state={self.state!r})"
        )

    @property
    def is_test(self) -> bool:
        return self.action == "test_webhook"


def _reject_constant(name: str) -> Any:
    raise MalformedPush(f"invalid JSON constant {name}")


# One decoder for the process: json.loads with options builds a new one per call.
_explain_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def _why_not_json(body: bytes) -> str:
    """Why orjson refused ``body``, in words for the 400 (runs on that error path only)."""
    try:
        _explain_decode(body.decode("utf-8"))
    except MalformedPush as exc:
        return exc.reason
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError:
        return "body is not valid JSON"
    # what the standard library reads but orjson does not
    return "body is not valid JSON: an unpaired surrogate or a number out of range"


def normalise_id(value: Any, name: str, *, required: bool) -> str | None:
    """A Moneybird ID as ``str``: a non-negative 64-bit integer, given as digits or a number."""
    if (
        value.__class__ is str
        and 0 < len(value) < 20  # at most 19 digits: below 2**64 without converting
        and value.isascii()
        and value.isdigit()
        and (value[0] != "0" or value == "0")
    ):
        return value  # the common case, already in canonical form
    if value is None:
        if required:
            raise MalformedPush(f"{name} is missing")
        return None
    if isinstance(value, bool):
        raise MalformedPush(f"{name} must be an ID")
    if isinstance(value, float) and value.is_integer() and not 0 <= value <= MAX_ID:
        # orjson reads an integer beyond 64 bits as a float
        raise MalformedPush(f"{name} is out of range")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= 20 and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise MalformedPush(f"{name} must be an ID")
    if not 0 <= number <= MAX_ID:
        raise MalformedPush(f"{name} is out of range")
    return str(number)


def _optional_name(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH:
        raise MalformedPush(f"{name} must be a short string")
    return value


def nested_deeper_than(data: Any, limit: int) -> bool:
    """Whether ``data`` has containers more than ``limit`` levels deep; iterative, level
    by level, so it cannot exhaust the stack whatever the input."""
    level = [data]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        for container in level:
            values = container.values() if container.__class__ is dict else container
            below += [v for v in values if v.__class__ is dict or v.__class__ is list]
        level = below
    return False


def parse_push(body: bytes) -> Push:
    """Parse and normalise a push body, or raise :class:`MalformedPush`."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedPush(_why_not_json(body)) from None
    if not isinstance(data, dict):
        raise MalformedPush("body must be a JSON object")
    if len(body.translate(None, _ALL_BUT_OPENERS)) > MAX_DEPTH and nested_deeper_than(
        data, MAX_DEPTH
    ):
        raise MalformedPush(f"JSON nested deeper than {MAX_DEPTH} levels")

    action = data.get("action")
    if not isinstance(action, str) or not action:
        raise MalformedPush("action must be a non-empty string")
    if len(action) > MAX_NAME_LENGTH:
        raise MalformedPush("action is too long")
    administration_id = normalise_id(
        data.get("administration_id"), "administration_id", required=True
    )
    assert administration_id is not None
    webhook_id = normalise_id(data.get("webhook_id"), "webhook_id", required=False)
    token_field = "token" if action == "test_webhook" else "webhook_token"
    token = data.get(token_field)
    if token is not None and not isinstance(token, str):
        raise MalformedPush(f"{token_field} must be a string")
    entity = data.get("entity")
    if entity is not None and not isinstance(entity, dict):
        raise MalformedPush("entity must be an object")
    return Push(
        action,
        administration_id,
        webhook_id,
        token,
        _optional_name(data, "entity_type"),
        normalise_id(data.get("entity_id"), "entity_id", required=False),
        _optional_name(data, "state"),
        data,
    )
