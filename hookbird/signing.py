"""Moneybird's push signature, computed: what the receiver checks and ``hookbird send`` makes.

``Moneybird-Signature: t=<epoch>,v1=<hex>`` carries a hex HMAC-SHA256 with the
webhook's secret over ``"{t}.{raw body}"``. Both sides need the same function: the
receiver (``receiver.verify``) to check a push, :mod:`hookbird.pushes` to sign one
like Moneybird would. It lives in the core so neither imports the other.
"""

from __future__ import annotations

import hashlib
import hmac


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The hex ``v1`` Moneybird computes for this body, secret and timestamp."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
