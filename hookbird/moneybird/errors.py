"""What can go wrong talking to Moneybird, as one small tree.

::

    MoneybirdError                    status_code, method, path, body
    ├── TransientError                retry later: retry_at (epoch seconds) or None
    │   ├── RateLimited               429, or our own budget is spent; retry_at is set
    │   ├── ServerError               5xx
    │   ├── Timeout                   no answer in time
    │   └── ConnectionFailed          could not connect / connection dropped
    └── PermanentError                retrying will not help: dead letter
        ├── BadRequest                400; Moneybird's ``error`` and ``symbolic`` fields
        ├── Unauthorized              401 (token wrong, revoked or expired beyond refresh)
        ├── PaymentRequired           402 (administration's plan does not allow it)
        ├── Forbidden                 403 (scope missing)
        ├── NotFound                  404
        └── Unprocessable             422; Moneybird's ``error`` details

Workers retry :class:`TransientError` with backoff (``retry_at`` wins when set) and
dead-letter :class:`PermanentError`. No error carries the token: ``path`` is the
API path only, never a header.
"""

from __future__ import annotations

from typing import Any


class MoneybirdError(Exception):
    """Base of every error the Moneybird client raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.method = method
        self.path = path
        self.body = body

    def __repr__(self) -> str:
        where = f" {self.method} {self.path}" if self.method else ""
        status = f" status={self.status_code}" if self.status_code is not None else ""
        return f"{type(self).__name__}({self.message!r}{where}{status})"


class TransientError(MoneybirdError):
    """Worth retrying later; ``retry_at`` (epoch seconds) says when, if known."""

    def __init__(self, message: str, *, retry_at: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_at = retry_at

    def __repr__(self) -> str:
        base = super().__repr__()
        return base if self.retry_at is None else f"{base[:-1]} retry_at={self.retry_at:.0f})"


class RateLimited(TransientError):
    """Moneybird answered 429, or hookbird's shared budget has no slot before ``retry_at``."""


class ServerError(TransientError):
    """Moneybird answered 5xx."""


class Timeout(TransientError):
    """Moneybird did not answer in time."""


class ConnectionFailed(TransientError):
    """The connection could not be made or was dropped."""


class PermanentError(MoneybirdError):
    """Retrying the same request will not help."""


class BadRequest(PermanentError):
    """400; ``error`` and ``symbolic`` are Moneybird's explanation when it gave one."""

    def __init__(
        self, message: str, *, error: Any = None, symbolic: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.error = error
        self.symbolic = symbolic


class Unauthorized(PermanentError):
    """401: the token is wrong, revoked, or expired and could not be refreshed."""


class PaymentRequired(PermanentError):
    """402: the administration's plan does not include this."""


class Forbidden(PermanentError):
    """403: the token lacks the scope for this call."""


class NotFound(PermanentError):
    """404."""


class Unprocessable(PermanentError):
    """422: Moneybird refused the data; ``error`` holds its details."""

    def __init__(self, message: str, *, error: Any = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.error = error
