"""Who may use the console, and proof that a button press came from its own page.

Without ``HOOKBIRD_CONSOLE_PASSWORD`` (``HOOKBIRD_CONSOLE=open``, what ``hookbird dev``
uses on a loopback address) everyone who reaches the port may; with it, every request
needs HTTP Basic credentials whose password matches (any user name), compared in
constant time on digests so neither the content nor the length leaks. The password
is never logged: it is one of ``Settings.secrets()``, which the log scrubber blanks.

Buttons are forms that POST: a browser sends Basic credentials (and a dev console
needs none) with a request another site makes it send, so each form carries a token
that must equal the console's cookie (a double-submit token). Another site can
neither read the cookie nor set it; the cookie is also ``SameSite=Strict``, so a
cross-site POST arrives without it. Both checks are pure functions, the middleware a
thin ASGI wrapper.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

#: The cookie holding the form token; scoped to /console.
CSRF_COOKIE = "hookbird_console_csrf"
#: The form field that must repeat it.
CSRF_FIELD = "csrf"
REALM = 'Basic realm="hookbird console", charset="UTF-8"'


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def password_matches(header: str | None, password: str) -> bool:
    """Whether an ``Authorization`` header carries Basic credentials with ``password``."""
    if not header:
        return False
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _user, colon, given = decoded.partition(b":")
    if not colon:
        return False
    return hmac.compare_digest(_digest(given), _digest(password.encode("utf-8")))


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_matches(cookie: str | None, field: str | None) -> bool:
    """Whether the form's token repeats the cookie's (both present, constant time)."""
    if not cookie or not field:
        return False
    return hmac.compare_digest(_digest(cookie.encode()), _digest(field.encode()))


class BasicAuth:
    """Answers 401 unless the request carries the console's password; else the app."""

    def __init__(self, app: ASGIApp, password: str) -> None:
        self.app = app
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    header = value.decode("latin-1")
                    break
            if not password_matches(header, self.password):
                response = PlainTextResponse(
                    "The hookbird console needs its password (HOOKBIRD_CONSOLE_PASSWORD).\n",
                    status_code=401,
                    headers={"WWW-Authenticate": REALM, "Cache-Control": "no-store"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
