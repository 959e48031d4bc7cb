"""Reading Moneybird's answers: pure functions, no I/O, unit-tested on their own.

Everything the client learns from a response goes through here: which error a
status means, when to try again (``Retry-After`` and ``RateLimit-Reset`` are epoch
seconds in Moneybird's documentation but small numbers of seconds elsewhere: a
value of 1e9 or more is taken as an epoch), what the rate-limit headers say, and
where the next page is (``Link: <…>; rel="next"``; Moneybird sends no totals).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hookbird.moneybird.errors import (
    BadRequest,
    Forbidden,
    MoneybirdError,
    NotFound,
    PaymentRequired,
    PermanentError,
    RateLimited,
    ServerError,
    Unauthorized,
    Unprocessable,
)

#: A header value at or above this is an epoch timestamp, below it a number of seconds.
EPOCH_THRESHOLD = 1e9

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")
_REL = re.compile(r"""rel\s*=\s*"?([^";]+)"?""")


def header_time(value: str | None, now: float) -> float | None:
    """An absolute epoch time from a ``Retry-After``/``RateLimit-Reset`` value, if readable."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if number < 0:
        return None
    return number if number >= EPOCH_THRESHOLD else now + number


def next_link(link_header: str | None) -> str | None:
    """The URL of ``rel="next"`` in a ``Link`` header, or None on the last page."""
    if not link_header:
        return None
    for match in _LINK.finditer(link_header):
        url, params = match.group(1), match.group(2)
        for rel in _REL.findall(params):
            if "next" in rel.split():
                return url
    return None


@dataclass(frozen=True)
class RateHeaders:
    """What the rate-limit headers of one response say (all optional)."""

    limit: int | None
    remaining: int | None
    reset_at: float | None
    retry_at: float | None

    @classmethod
    def parse(cls, headers: Mapping[str, str], now: float) -> RateHeaders:
        def as_int(name: str) -> int | None:
            raw = headers.get(name)
            try:
                return int(float(raw)) if raw is not None else None
            except ValueError:
                return None

        return cls(
            limit=as_int("ratelimit-limit"),
            remaining=as_int("ratelimit-remaining"),
            reset_at=header_time(headers.get("ratelimit-reset"), now),
            retry_at=header_time(headers.get("retry-after"), now),
        )

    def exhausted_until(self, now: float) -> float | None:
        """When the server says the budget is spent, until when; else None.

        ``RateLimit-Remaining`` is ambiguous (before or after this request?), so it
        is only believed when it says 0 and a reset time in the future comes with it.
        """
        if self.remaining == 0 and self.reset_at is not None and self.reset_at > now:
            return self.reset_at
        return None


def is_binary(content_type: str | None) -> bool:
    """Is a body of this type a file (PDF, image, zip), not JSON or text to decode?"""
    if not content_type:
        return False  # Moneybird labels its files; an unlabelled body is decoded
    kind = content_type.split(";", 1)[0].strip().lower()
    return not (kind.startswith("text/") or kind.endswith(("/json", "+json", "/xml", "+xml")))


def decode_body(content: bytes, content_type: str | None) -> Any:
    """JSON when it parses as JSON (the body decides), else text."""
    if not content:
        return None
    text = content.decode("utf-8", "replace")
    if text.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def stringify_ids(data: Any) -> Any:
    """IDs as ``str`` everywhere: ``id``, ``*_id`` and ``*_ids`` values that came as numbers.

    Moneybird's IDs are 64-bit; most are strings already, but some fields (such as
    ``administration_id``) arrive as JSON numbers, which other languages' parsers round.
    """
    if isinstance(data, list):
        return [stringify_ids(item) for item in data]
    if not isinstance(data, dict):
        return data
    fixed: dict[str, Any] = {}
    for key, value in data.items():
        is_id = key == "id" or key.endswith("_id")
        if is_id and isinstance(value, int) and not isinstance(value, bool):
            fixed[key] = str(value)
        elif key.endswith("_ids") and isinstance(value, list):
            fixed[key] = [
                str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value
            ]
        else:
            fixed[key] = stringify_ids(value)
    return fixed


def _field(body: Any, name: str) -> Any:
    return body.get(name) if isinstance(body, dict) else None


_PERMANENT: dict[int, type[PermanentError]] = {
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
}


def error_for(
    status: int,
    *,
    method: str,
    path: str,
    body: Any,
    headers: Mapping[str, str],
    now: float,
) -> MoneybirdError | None:
    """The error a response means, or None for a success (2xx/3xx)."""
    if status < 400:
        return None
    where = {"status_code": status, "method": method, "path": path, "body": body}
    detail = _field(body, "error")
    message = f"Moneybird answered {status} to {method} {path}"
    if detail:
        message += f": {detail}"
    if status == 429:
        rate = RateHeaders.parse(headers, now)
        return RateLimited(message, retry_at=rate.retry_at or rate.reset_at or now + 60.0, **where)
    if status >= 500:
        return ServerError(message, retry_at=header_time(headers.get("retry-after"), now), **where)
    if status == 400:
        return BadRequest(message, error=detail, symbolic=_field(body, "symbolic"), **where)
    if status == 422:
        return Unprocessable(message, error=detail if detail is not None else body, **where)
    kind = _PERMANENT.get(status, PermanentError)
    return kind(message, **where)
