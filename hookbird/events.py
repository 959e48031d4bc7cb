"""The :class:`Event` a handler receives, parsed from a stored push without I/O.

The receiver keeps each accepted push as a Redis hash (``hookbird:event:<id>``):
the raw body bytes plus a few fields it already extracted. :func:`event_from_stored`
turns that hash into an immutable Event. IDs stay ``str`` (Moneybird sends 64-bit
integers as strings, old payloads as plain integers). ``version`` is the entity's
own ``version`` (Moneybird bumps it on every change), used to skip stale pushes.
``source`` is ``"push"`` for what Moneybird sent and ``"reconcile"`` for what
``hookbird reconcile`` found it had missed (the stored push's header says so).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class UnreadableEvent(ValueError):
    """The stored push cannot be turned into an Event (damaged or foreign data)."""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _id(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    return str(value)


def _version(entity: Mapping[str, Any]) -> int | None:
    raw = entity.get("version")
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        return int(raw)
    return None


@dataclass(frozen=True)
class Event:
    """One Moneybird push, as handlers see it. ``attempt`` counts from 1."""

    event_id: str
    administration_id: str
    webhook_id: str | None
    action: str
    entity_type: str | None
    entity_id: str | None
    state: str | None
    entity: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    version: int | None = None
    received_at: float = 0.0
    idempotency_key: str | None = None
    attempt: int = 1
    #: ``"push"`` (Moneybird sent it) or ``"reconcile"`` (a reconciliation found it)
    source: str = "push"
    #: the entity's version is one this hookbird's own handlers wrote (a two-way sync's
    #: echo); set by the worker, see ``hookbird.versions``
    own_write: bool = False

    @property
    def entity_key(self) -> tuple[str, str, str] | None:
        """``(administration_id, entity_type, entity_id)``, or None for pushes about no entity."""
        if not self.entity_type or not self.entity_id:
            return None
        return (self.administration_id, self.entity_type, self.entity_id)

    def summary(self) -> str:
        """``contact_created Contact 456 adm 123``: how logs and job descriptions name it."""
        parts = [self.action]
        if self.entity_type:
            parts.append(self.entity_type)
        if self.entity_id:
            parts.append(self.entity_id)
        parts.append(f"adm {self.administration_id}")
        return " ".join(parts)


def event_from_stored(event_id: str, stored: Mapping[Any, Any], *, attempt: int = 1) -> Event:
    """Build the Event from a ``hookbird:event:<id>`` hash (bytes or str keys)."""
    fields = {_text(k): v for k, v in stored.items()}
    raw_body = fields.get("body")
    try:
        data = json.loads(raw_body if raw_body is not None else b"")
    except (ValueError, TypeError) as exc:
        raise UnreadableEvent(f"event {event_id}: body is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UnreadableEvent(f"event {event_id}: body is not a JSON object")
    entity = data.get("entity")
    if not isinstance(entity, dict):
        entity = {}
    action = _text(fields.get("action")) or _text(data.get("action"))
    administration_id = _text(fields.get("administration_id")) or _id(data.get("administration_id"))
    if not action or not administration_id:
        raise UnreadableEvent(f"event {event_id}: no action or administration_id")
    try:
        received_at = float(_text(fields.get("received_at")) or 0.0)
    except ValueError:
        received_at = 0.0
    state = data.get("state")
    return Event(
        event_id=event_id,
        administration_id=administration_id,
        webhook_id=_text(fields.get("webhook_id")) or _id(data.get("webhook_id")),
        action=action,
        entity_type=_text(fields.get("entity_type")) or _id(data.get("entity_type")),
        entity_id=_text(fields.get("entity_id")) or _id(data.get("entity_id")),
        state=state if isinstance(state, str) else None,
        entity=entity,
        version=_version(entity),
        received_at=received_at,
        idempotency_key=_text(fields.get("idempotency_key")) or None,
        attempt=attempt,
        source=_text(fields.get("source")) or "push",
    )
