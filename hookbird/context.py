"""What a handler gets besides the event: :class:`Context`, and :class:`RetryLater`.

Handlers receive their dependencies as an argument (gidgethub passes ``gh``), so a
test builds a Context with whatever client it likes. ``ctx.moneybird`` is created
on first use: a handler that never calls the API needs no credentials, and the one
shared client per worker process is only built when someone needs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import redis

from hookbird.events import Event
from hookbird.settings import Settings

if TYPE_CHECKING:  # typed for editors and mypy; loaded only when a handler uses it
    from hookbird.moneybird._generated.api import Api


class RetryLater(Exception):
    """Raise from a handler to be run again later; counts as an attempt.

    ``after`` is seconds from now or an aware ``datetime``; None means the usual backoff.
    """

    def __init__(
        self, reason: str = "handler asked to retry", *, after: float | datetime | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.after = after

    def retry_at(self, now: float) -> float | None:
        """The epoch time the handler asked for, if any."""
        if self.after is None:
            return None
        if isinstance(self.after, datetime):
            return self.after.timestamp()
        return now + float(self.after)

    def __repr__(self) -> str:
        return f"RetryLater({self.reason!r}, after={self.after!r})"


def idempotency_key(event_id: str, handler: str) -> str:
    """A key stable across every retry of one handler for one push, unique otherwise."""
    digest = hashlib.sha256(f"{event_id}\x00{handler}".encode()).hexdigest()
    return f"hookbird-{digest[:32]}"


@dataclass(frozen=True)
class Context:
    """Dependencies for one handler run on one event.

    ``moneybird`` is the shared client scoped to the push's administration, built on
    first use by ``moneybird_factory(administration_id)``.
    """

    event: Event
    handler: str
    settings: Settings
    redis: redis.Redis
    log: Any
    moneybird_factory: Callable[[str], Any] | None = field(default=None, repr=False)

    @cached_property
    def moneybird(self) -> Api:
        """The Moneybird client for ``event.administration_id`` (built on first use):
        every operation of the API, typed (``ctx.moneybird.contacts.get(id)`` is a
        :class:`hookbird.moneybird.types.Contact`)."""
        if self.moneybird_factory is None:
            raise RuntimeError("no Moneybird client is configured for this worker")
        found: Api = self.moneybird_factory(self.event.administration_id)
        return found

    @property
    def idempotency_key(self) -> str:
        """Stable per (event, handler): send it with writes so a retry cannot do them twice."""
        return idempotency_key(self.event.event_id, self.handler)

    def idempotency_key_for(self, event: Event) -> str:
        """:attr:`idempotency_key` for one event of a batch handler's batch."""
        return idempotency_key(event.event_id, self.handler)
