"""The shared Moneybird API client (see ``errors`` for what it raises).

``Client`` talks to Moneybird for every administration (one HTTP pool, one rate
budget in Redis, typed errors); ``client.administration(id)`` is the scoped object
a handler gets as ``ctx.moneybird``. Workers build theirs with
``Client.for_worker(settings, redis)``.

Inside, imports run one way: ``resources`` (an administration's resources, and this
``Client``) sits on ``client`` (sending: budget, auth, retries, errors), which never
imports it; code generated from Moneybird's spec goes in ``_generated``, between them.
"""

from __future__ import annotations

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
]
