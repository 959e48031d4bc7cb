"""Per-administration Moneybird credentials, kept in Redis and encrypted at rest.

A SaaS connected to many customer administrations holds one OAuth token pair per
administration (or a personal API token). They are stored as Fernet tokens
(``cryptography``: AES-128-CBC + HMAC-SHA256, timestamped) under
``hookbird:credential:<administration_id>``, encrypted with ``HOOKBIRD_SECRET_KEY``
(:mod:`hookbird.crypto`). Without that key nothing is stored and nothing stored can be
read; the error says how to make a key. Several comma-separated keys rotate (the
first encrypts).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field

import redis
from cryptography.fernet import InvalidToken, MultiFernet

from hookbird import crypto
from hookbird.crypto import MAKE_A_KEY as MAKE_A_KEY
from hookbird.logs import add_known_secrets

PREFIX = "hookbird:credential:"
INDEX = "hookbird:credentials"


class CredentialError(Exception):
    """Credentials cannot be stored or read; the message says what to do."""


@dataclass(frozen=True)
class Credential:
    """How to authenticate for one administration."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    kind: str = "oauth"  # or "personal"

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """True when the access token is (nearly) expired and a refresh token exists."""
        if self.expires_at is None or self.refresh_token is None:
            return False
        return self.expires_at - seconds <= (time.time() if now is None else now)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Credential:
        data = json.loads(raw)
        data["scopes"] = tuple(data.get("scopes") or ())
        return cls(**data)


def fernet(secret_key: str | None) -> MultiFernet:
    """The cipher for ``HOOKBIRD_SECRET_KEY``; a missing or invalid key raises CredentialError."""
    try:
        return crypto.fernet(secret_key, "credentials")
    except crypto.SecretKeyError as exc:
        raise CredentialError(str(exc)) from None


class CredentialStore:
    """Encrypted credentials per administration in Redis."""

    def __init__(self, client: redis.Redis, secret_key: str | None) -> None:
        self.redis = client
        self._secret_key = secret_key
        self._cipher: MultiFernet | None = None

    @property
    def cipher(self) -> MultiFernet:
        if self._cipher is None:
            self._cipher = fernet(self._secret_key)
        return self._cipher

    def put(self, administration_id: str, credential: Credential) -> None:
        token = self.cipher.encrypt(credential.to_json())
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(PREFIX + administration_id, token)
        pipe.sadd(INDEX, administration_id)
        pipe.execute()

    def get(self, administration_id: str) -> Credential | None:
        raw = self.redis.get(PREFIX + administration_id)
        if raw is None:
            return None
        try:
            plain = self.cipher.decrypt(raw)
        except InvalidToken:
            raise CredentialError(
                f"the stored credentials of administration {administration_id} cannot be "
                "decrypted with HOOKBIRD_SECRET_KEY: it is not the key they were stored with. "
                "Set the old key first in HOOKBIRD_SECRET_KEY (comma-separated), or store them "
                "again with `hookbird oauth exchange`."
            ) from None
        credential = Credential.from_json(plain)
        add_known_secrets([credential.access_token, credential.refresh_token or ""])
        return credential

    def delete(self, administration_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(PREFIX + administration_id)
        pipe.srem(INDEX, administration_id)
        deleted, _ = pipe.execute()
        return bool(deleted)

    def administrations(self) -> list[str]:
        return sorted(m.decode() if isinstance(m, bytes) else m for m in self.redis.smembers(INDEX))
