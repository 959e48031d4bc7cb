"""Moneybird credentials, kept in Redis and encrypted at rest: one per OAuth grant.

A SaaS connected to many customer administrations holds one OAuth token pair per
*grant*: the customer's one "allow" click, which may cover several administrations.
Moneybird spends a refresh token when it is used, so the pair must live in one place:
``hookbird:grant:<grant_id>`` holds it and each administration's
``hookbird:credential:<administration_id>`` holds only ``grant:<grant_id>``. A personal
API token is stored directly under the administration's key, and so are OAuth pairs an
older hookbird copied to every administration: they are read as before and moved into
one grant (with every administration sharing their refresh token) at their next
refresh (:meth:`CredentialStore.swap`).

Values are Fernet tokens (``cryptography``: AES-128-CBC + HMAC-SHA256, timestamped),
encrypted with ``HOOKBIRD_SECRET_KEY`` (:mod:`hookbird.crypto`). Without that key
nothing is stored and nothing stored can be read; the error says how to make a key.
Several comma-separated keys rotate (the first encrypts); :meth:`CredentialStore.rotate`
re-encrypts everything with the first so the others can be dropped.

A grant Moneybird refused (``invalid_grant``) keeps its record with ``needs_reauth``
set and no tokens, so every process stops asking the token endpoint for it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field, fields, replace

import redis
from cryptography.fernet import InvalidToken, MultiFernet

from hookbird import crypto
from hookbird.crypto import MAKE_A_KEY as MAKE_A_KEY
from hookbird.logs import add_known_secrets

PREFIX = "hookbird:credential:"
INDEX = "hookbird:credentials"
GRANT_PREFIX = "hookbird:grant:"
GRANTS = "hookbird:grants"
POINTER = b"grant:"

# Store ARGV[3] under KEYS[3] only while this process still holds the refresh lock
# (KEYS[1] == ARGV[1]) and KEYS[2] still holds what the refresh started from (ARGV[2]);
# then point each administration key KEYS[5..] that still holds ARGV[5..] at the grant
# (ARGV[4]) and index it in KEYS[4]. 1: stored; 0: lock lost; -1: changed meanwhile.
_SWAP = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('get', KEYS[2]) ~= ARGV[2] then return -1 end
redis.call('set', KEYS[3], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('sadd', KEYS[4], ARGV[4])
  for i = 5, #KEYS do
    if redis.call('get', KEYS[i]) == ARGV[i] then
      redis.call('set', KEYS[i], 'grant:' .. ARGV[4])
    end
  end
end
return 1
"""


class CredentialError(Exception):
    """Credentials cannot be stored or read; the message says what to do."""


@dataclass(frozen=True)
class Credential:
    """How to authenticate for one administration (or for every one of a grant)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: float | None = None
    scopes: tuple[str, ...] = ()
    kind: str = "oauth"  # or "personal"
    needs_reauth: str | None = None  # why the grant must be authorised again, if it must
    grant_id: str | None = field(default=None, compare=False)  # where it was read from

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """True when the access token is (nearly) expired and a refresh token exists."""
        if self.expires_at is None or self.refresh_token is None:
            return False
        return self.expires_at - seconds <= (time.time() if now is None else now)

    def to_json(self) -> bytes:
        data = asdict(self)
        data["scopes"] = list(self.scopes)
        del data["grant_id"]
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Credential:
        data = json.loads(raw)
        known = {f.name for f in fields(cls)} - {"grant_id"}
        data = {k: v for k, v in data.items() if k in known}
        data["scopes"] = tuple(data.get("scopes") or ())
        return cls(**data)


@dataclass(frozen=True)
class Stored:
    """A credential as read, with where it lives and its ciphertext (for :meth:`swap`)."""

    credential: Credential
    key: str  # the Redis key holding the ciphertext
    raw: bytes


def fernet(secret_key: str | None) -> MultiFernet:
    """The cipher for ``HOOKBIRD_SECRET_KEY``; a missing or invalid key raises CredentialError."""
    try:
        return crypto.fernet(secret_key, "credentials")
    except crypto.SecretKeyError as exc:
        raise CredentialError(str(exc)) from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _raw(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class CredentialStore:
    """Encrypted credentials in Redis: per grant, with administrations pointing to them."""

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
        """Store a credential for one administration only (a personal token)."""
        token = self.cipher.encrypt(credential.to_json())
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(PREFIX + administration_id, token)
        pipe.sadd(INDEX, administration_id)
        pipe.execute()

    def put_grant(self, credential: Credential, administration_ids: list[str]) -> str:
        """Store a fresh OAuth grant for these administrations; its new grant id.

        Grants no administration points to any more (replaced by this one) are deleted.
        """
        grant_id = secrets.token_hex(8)
        before = {self.grant_of(a) for a in administration_ids} - {None}
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(GRANT_PREFIX + grant_id, self.cipher.encrypt(credential.to_json()))
        pipe.sadd(GRANTS, grant_id)
        for administration_id in administration_ids:
            pipe.set(PREFIX + administration_id, POINTER + grant_id.encode())
            pipe.sadd(INDEX, administration_id)
        pipe.execute()
        in_use = set(self.grants().values())
        for old in before - in_use:
            assert old is not None
            self.redis.delete(GRANT_PREFIX + old)
            self.redis.srem(GRANTS, old)
        return grant_id

    def grant_of(self, administration_id: str) -> str | None:
        """The grant an administration points to; None for direct (personal, older) entries."""
        raw = _raw(self.redis.get(PREFIX + administration_id))
        if raw is None or not raw.startswith(POINTER):
            return None
        return _text(raw[len(POINTER) :])

    def grants(self) -> dict[str, str]:
        """administration id → grant id, for administrations that point to a grant."""
        ids = self.administrations()
        values = [_raw(v) for v in self.redis.mget([PREFIX + a for a in ids])] if ids else []
        return {
            a: _text(v[len(POINTER) :])
            for a, v in zip(ids, values, strict=True)
            if v is not None and v.startswith(POINTER)
        }

    def load(self, administration_id: str) -> Stored | None:
        """The administration's credential with its location, following a grant pointer."""
        key = PREFIX + administration_id
        raw = _raw(self.redis.get(key))
        grant_id = None
        if raw is not None and raw.startswith(POINTER):
            grant_id = _text(raw[len(POINTER) :])
            key = GRANT_PREFIX + grant_id
            raw = _raw(self.redis.get(key))
        if raw is None:
            return None
        credential = replace(self._open(raw, administration_id), grant_id=grant_id)
        return Stored(credential, key, raw)

    def get(self, administration_id: str) -> Credential | None:
        stored = self.load(administration_id)
        return None if stored is None else stored.credential

    def _open(self, raw: bytes, administration_id: str) -> Credential:
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

    def swap(self, lock: redis.lock.Lock, before: Stored, after: Credential) -> bool:
        """Replace ``before`` with ``after`` if ``lock`` is still ours and nothing changed.

        A direct OAuth entry an older hookbird stored moves into a new grant here, with
        every administration whose entry holds the same refresh token. False: the lock
        expired or another process stored something newer; nothing was written.
        """
        token = lock.local.token
        if token is None:
            return False
        sealed = self.cipher.encrypt(after.to_json())
        keys = [lock.name, before.key]
        args: list[bytes | str] = [token, before.raw]
        if before.credential.grant_id is not None or before.credential.kind != "oauth":
            keys += [before.key, GRANTS]
            args += [sealed, ""]
        else:
            grant_id = secrets.token_hex(8)
            keys += [GRANT_PREFIX + grant_id, GRANTS]
            args += [sealed, grant_id]
            for key, raw in self._sharing(before.credential.refresh_token):
                keys.append(key)
                args.append(raw)
        result = self.redis.eval(_SWAP, len(keys), *keys, *args)
        return bool(result == 1)

    def _sharing(self, refresh_token: str | None) -> list[tuple[str, bytes]]:
        """Direct entries (key, ciphertext) holding this refresh token."""
        found = []
        for administration_id in self.administrations():
            key = PREFIX + administration_id
            raw = _raw(self.redis.get(key))
            if raw is None or raw.startswith(POINTER):
                continue
            try:
                credential = Credential.from_json(self.cipher.decrypt(raw))
            except InvalidToken:
                continue
            if refresh_token and credential.refresh_token == refresh_token:
                found.append((key, raw))
        return found

    def rotate(self) -> tuple[int, int]:
        """Re-encrypt every stored credential and grant with the first key.

        Returns (administration entries, grants) rewritten. Each value is rewritten only
        if it did not change meanwhile (a refresh in a worker wins). Raises
        CredentialError when one cannot be decrypted with any listed key.
        """
        counts = [0, 0]
        targets = [(PREFIX + a, a, 0) for a in self.administrations()]
        targets += [(GRANT_PREFIX + g, f"grant {g}", 1) for g in self.grant_ids()]
        for key, whose, slot in targets:
            raw = _raw(self.redis.get(key))
            if raw is None or raw.startswith(POINTER):
                continue
            try:
                fresh = self.cipher.rotate(raw)
            except InvalidToken:
                raise CredentialError(
                    f"the stored credentials of {whose} cannot be decrypted with any key in "
                    f"HOOKBIRD_SECRET_KEY; {crypto.ROTATE}"
                ) from None
            if self.redis.eval(_REPLACE, 1, key, raw, fresh) == 1:
                counts[slot] += 1
        return counts[0], counts[1]

    def delete(self, administration_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(PREFIX + administration_id)
        pipe.srem(INDEX, administration_id)
        deleted, _ = pipe.execute()
        return bool(deleted)

    def administrations(self) -> list[str]:
        return sorted(_text(m) for m in self.redis.smembers(INDEX))

    def grant_ids(self) -> list[str]:
        return sorted(_text(m) for m in self.redis.smembers(GRANTS))


# SET KEYS[1] ARGV[2] only while it still holds ARGV[1].
_REPLACE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[2])
return 1
"""
