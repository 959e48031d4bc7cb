"""The shared Moneybird API client (see ``errors`` for what it raises).

``Client`` talks to Moneybird for every administration (one HTTP pool, one rate
budget in Redis, typed errors); ``client.administration(id)`` is the scoped object
a handler gets as ``ctx.moneybird``. Workers build theirs with
``Client.for_worker(settings, redis)``.

Inside, imports run one way: ``resources`` (an administration's resources, and this
``Client``) sits on ``client`` (sending: budget, auth, retries, errors), which never
imports it; code generated from Moneybird's spec goes in ``_generated``, between them.

``operations`` maps each ``operationId`` of Moneybird's spec to its method's dotted
path relative to an :class:`Administration` (``"sales_invoices.payments.create"``);
``administration.operation(operation_id)`` is that method. docs/moneybird-api.md
lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from hookbird.moneybird._generated.operation_table import OPERATIONS
from hookbird.moneybird.errors import (
    BadRequest,
    ConnectionFailed,
    Forbidden,
    MoneybirdError,
    NotFound,
    PaymentRequired,
    PermanentError,
    RateLimited,
    ServerError,
    Timeout,
    TransientError,
    Unauthorized,
    Unprocessable,
)
from hookbird.moneybird.resources import Administration, Client

operations: Mapping[str, str] = MappingProxyType(OPERATIONS)

__all__ = [
    "Administration",
    "BadRequest",
    "Client",
    "ConnectionFailed",
    "Forbidden",
    "MoneybirdError",
    "NotFound",
    "PaymentRequired",
    "PermanentError",
    "RateLimited",
    "ServerError",
    "Timeout",
    "TransientError",
    "Unauthorized",
    "Unprocessable",
    "operations",
]
