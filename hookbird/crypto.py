"""Encryption at rest under ``HOOKBIRD_SECRET_KEY``: one key for everything hookbird seals.

Moneybird credentials (:mod:`hookbird.moneybird.credentials`) and webhook signing
secrets (:mod:`hookbird.subscriptions`) are kept in Redis as Fernet tokens
(``cryptography``: AES-128-CBC + HMAC-SHA256, timestamped). The key may list several
comma-separated keys to rotate: the first encrypts, any of them decrypts.

This module stands apart from :mod:`hookbird.moneybird` because the receiver, which
must not load the Moneybird client, decrypts signing secrets too.

Errors: :class:`SecretKeyError` (the key is missing, malformed, or not the one a
value was stored with); its message says what to do.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MAKE_A_KEY = (
    "Make one with\n"
    "  python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'\n"
    "and set it as HOOKBIRD_SECRET_KEY for every hookbird process (keep it out of the repo)."
)

ROTATE = "while rotating, list the new key first and the old one after it, comma-separated"


class SecretKeyError(Exception):
    """HOOKBIRD_SECRET_KEY cannot encrypt or decrypt a value; the message says what to do."""


def split_keys(secret_key: str | None) -> list[str]:
    """The keys in ``HOOKBIRD_SECRET_KEY``, in order; empty when it is unset or blank."""
    return [k.strip() for k in (secret_key or "").split(",") if k.strip()]


def fernet(secret_key: str | None, what: str) -> MultiFernet:
    """The cipher for ``HOOKBIRD_SECRET_KEY`` (comma-separated keys: first one encrypts).

    ``what`` names what the key protects, for the error message.
    """
    keys = split_keys(secret_key)
    if not keys:
        raise SecretKeyError(
            f"HOOKBIRD_SECRET_KEY is not set, so {what} cannot be stored or read. " + MAKE_A_KEY
        )
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except ValueError:
        raise SecretKeyError(
            "HOOKBIRD_SECRET_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes). "
            + MAKE_A_KEY
        ) from None


class Cipher:
    """``HOOKBIRD_SECRET_KEY``, opened on first use.

    A process that never meets an encrypted value runs without the key; one that
    does gets a :class:`SecretKeyError` naming the fix.
    """

    def __init__(self, secret_key: str | None, what: str) -> None:
        self._secret_key = secret_key
        self._what = what
        self._fernet: MultiFernet | None = None

    def _open(self) -> MultiFernet:
        if self._fernet is None:
            self._fernet = fernet(self._secret_key, self._what)
        return self._fernet

    def encrypt(self, plain: bytes) -> bytes:
        return self._open().encrypt(plain)

    def decrypt(self, token: bytes, whose: str) -> bytes:
        """The plaintext of ``token``; ``whose`` names the value in the error message."""
        if not split_keys(self._secret_key):
            raise SecretKeyError(
                f"{whose} are stored encrypted, but HOOKBIRD_SECRET_KEY is not set: set it, "
                "for every hookbird process, to the key they were stored with"
            )
        try:
            return self._open().decrypt(token)
        except InvalidToken:
            raise SecretKeyError(
                f"{whose} cannot be decrypted with HOOKBIRD_SECRET_KEY: it is not the key "
                f"they were stored with. Set HOOKBIRD_SECRET_KEY to that key ({ROTATE})"
            ) from None
