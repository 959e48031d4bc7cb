"""The shared Moneybird API client (see ``errors`` for what it raises)."""

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

__all__ = [
    "BadRequest",
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
