"""Is this push genuine? Token and signature checks as pure functions that raise.

:func:`authenticate` raises :class:`VerificationFailure` with a ``reason`` meant for
the log (never containing a secret); the endpoint answers 401 "unauthorized" and
says nothing more to the caller.

``Moneybird-Signature: t=<epoch>,v1=<hex>[,v1=<hex>…]`` is a hex HMAC-SHA256 with
the webhook's secret over ``"{t}.{raw body}"``. Any matching ``v1`` is accepted
(several are sent while a secret rotates), unknown schemes are ignored, and so is
a ``v1`` that is not 64 hex digits (what SHA-256 gives): nothing else can match, and
comparing it could only fail. A header with no well-formed ``v1`` is refused, and
``t`` must be within the tolerance of now.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field

from hookbird.signing import sign
from hookbird.subscriptions import token_digest

MAX_SIGNATURE_HEADER = 4096
MAX_V1_VALUES = 16
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class VerificationFailure(Exception):
    """The push is not authenticated; ``reason`` says why, without secrets."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Credentials:
    """What a push for one webhook must prove. ``token_sha256`` is the token's hex digest."""

    token_sha256: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    administration_id: str | None = None
    enabled: bool = True
    source: str = "environment"


@dataclass(frozen=True)
class Signature:
    timestamp: int
    v1: tuple[str, ...]


def check_token(presented: str | None, token_sha256: str) -> None:
    """Compare the presented token with the expected one in constant time."""
    if presented is None:
        raise VerificationFailure("no webhook_token in the push")
    if not hmac.compare_digest(token_digest(presented), token_sha256):
        raise VerificationFailure("wrong webhook_token")


def parse_signature(header: str) -> Signature:
    """Parse a ``Moneybird-Signature`` header, or raise :class:`VerificationFailure`."""
    if len(header) > MAX_SIGNATURE_HEADER:
        raise VerificationFailure("Moneybird-Signature header too long")
    timestamp: int | None = None
    v1: list[str] = []
    v1_seen = 0
    for part in header.split(","):
        scheme, sep, value = part.strip().partition("=")
        if not sep:
            raise VerificationFailure("Moneybird-Signature is malformed")
        scheme, value = scheme.strip(), value.strip()
        if scheme == "t":
            if timestamp is not None:
                raise VerificationFailure("Moneybird-Signature has more than one t")
            if not (value.isascii() and value.isdigit() and len(value) <= 12):
                raise VerificationFailure("Moneybird-Signature t is not an epoch")
            timestamp = int(value)
        elif scheme == "v1":
            v1_seen += 1
            if v1_seen > MAX_V1_VALUES:
                raise VerificationFailure("Moneybird-Signature has too many v1 values")
            if _HEX_SHA256.fullmatch(value):
                v1.append(value.lower())
        # Unknown schemes are ignored so Moneybird can add new ones.
    if timestamp is None:
        raise VerificationFailure("Moneybird-Signature has no t")
    if not v1:
        raise VerificationFailure("Moneybird-Signature has no well-formed v1")
    return Signature(timestamp=timestamp, v1=tuple(v1))


def verify_signature(
    body: bytes,
    header: str | None,
    secrets: tuple[str, ...],
    *,
    now: float,
    tolerance: int,
) -> Signature:
    """The header's :class:`Signature` if it carries a fresh ``v1`` made with one of
    ``secrets``; raise otherwise."""
    if not header:
        raise VerificationFailure("Moneybird-Signature missing but a secret is configured")
    signature = parse_signature(header)
    skew = now - signature.timestamp
    if skew > tolerance:
        raise VerificationFailure(f"Moneybird-Signature is stale ({int(skew)} s old)")
    if -skew > tolerance:
        raise VerificationFailure(f"Moneybird-Signature is from the future ({int(-skew)} s)")
    for secret in secrets:
        expected = sign(body, secret, signature.timestamp)
        # Check every candidate so the time taken does not say which one matched.
        matched = False
        for candidate in signature.v1:
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            return signature
    raise VerificationFailure("Moneybird-Signature does not match")


def authenticate(
    *,
    body: bytes,
    administration_id: str,
    presented_token: str | None,
    signature_header: str | None,
    credentials: Credentials | None,
    now: float,
    tolerance: int,
    require_signature: bool = False,
) -> Signature | None:
    """All checks for one push, in order; raises :class:`VerificationFailure`.

    Returns the verified signature, or None for a push whose webhook has no secret:
    the receiver dedups a signed push on what its signature covers as well. With
    ``require_signature`` (``HOOKBIRD_REQUIRE_SIGNATURE``) a webhook without a known
    secret is refused: its pushes could not prove more than the token.
    """
    if credentials is None:
        raise VerificationFailure("unknown webhook and no HOOKBIRD_WEBHOOK_TOKEN configured")
    if not credentials.enabled:
        raise VerificationFailure("webhook is disabled")
    if (
        credentials.administration_id is not None
        and credentials.administration_id != administration_id
    ):
        raise VerificationFailure("administration_id does not match the webhook's")
    check_token(presented_token, credentials.token_sha256)
    if credentials.secrets:
        return verify_signature(
            body, signature_header, credentials.secrets, now=now, tolerance=tolerance
        )
    if require_signature:
        raise VerificationFailure(
            f"no signing secret known for this webhook ({credentials.source}) "
            "and HOOKBIRD_REQUIRE_SIGNATURE is on"
        )
    return None
