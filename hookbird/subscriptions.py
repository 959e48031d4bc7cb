"""The subscription store: which webhooks hookbird accepts pushes for.

Multi-webhook setups (a SaaS with many customer administrations) keep one entry per
Moneybird webhook in Redis, keyed by ``webhook_id``: the administration it belongs
to, a SHA-256 digest of its token (the token itself is never stored), its signing
secret(s) and whether it is enabled. ``hookbird webhooks add`` writes an entry by
hand; ``hookbird webhooks register`` creates the webhook in Moneybird and writes the
same entry.

Signing secrets must be readable to check ``Moneybird-Signature``, so they cannot be
kept as digests: they are encrypted with ``HOOKBIRD_SECRET_KEY`` (:mod:`hookbird.crypto`)
into the field ``secrets_enc``, a Fernet token of the JSON list. Storing secrets
without the key is refused; an entry without secrets needs no key. Entries written
before hookbird encrypted them keep a plaintext ``secrets`` field: they are still
read, ``hookbird doctor`` warns about them and ``hookbird webhooks encrypt`` seals
them (and re-encrypts the others with the first key after a rotation).

Single-webhook setups need no entry: ``HOOKBIRD_WEBHOOK_TOKEN`` covers every push
whose ``webhook_id`` is not in the store.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from hookbird import keys
from hookbird.crypto import Cipher

#: What the key protects here, for error messages.
SIGNING_SECRETS = "webhook signing secrets"


def cipher(secret_key: str | None) -> Cipher:
    """The cipher for signing secrets under ``HOOKBIRD_SECRET_KEY`` (opened on first use)."""
    return Cipher(secret_key, SIGNING_SECRETS)


def token_digest(token: str) -> str:
    """The hex SHA-256 of a webhook token: what the store keeps and the receiver compares."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Subscription:
    """One webhook's entry in the store.

    ``secrets`` are the signing secrets in plaintext, or None when they are stored
    encrypted and were read without decrypting them (``from_hash`` without a cipher).
    """

    webhook_id: str
    administration_id: str
    token_sha256: str = field(repr=False)
    secrets: tuple[str, ...] | None = field(default=(), repr=False)
    enabled: bool = True
    url: str = ""
    events: tuple[str, ...] = ()
    created_at: float = 0.0

    @property
    def signed(self) -> bool:
        """Whether pushes must carry a valid ``Moneybird-Signature``."""
        return self.secrets is None or bool(self.secrets)

    def to_hash(self, cipher: Cipher) -> dict[str, str]:
        """The Redis hash, secrets encrypted; without a usable key raises SecretKeyError."""
        if self.secrets is None:
            raise ValueError("the secrets of this subscription were not decrypted")
        fields = {
            "webhook_id": self.webhook_id,
            "administration_id": self.administration_id,
            "token_sha256": self.token_sha256,
            "enabled": "1" if self.enabled else "0",
            "url": self.url,
            "events": json.dumps(list(self.events)),
            "created_at": repr(self.created_at),
        }
        if self.secrets:
            fields["secrets_enc"] = seal(self.secrets, cipher)
        return fields

    @classmethod
    def from_hash(
        cls, data: Mapping[bytes | str, bytes | str], cipher: Cipher | None
    ) -> Subscription:
        """Parse a stored entry, decrypting its secrets with ``cipher``.

        With a cipher, secrets the key cannot open raise SecretKeyError (never an entry
        that looks unsigned); without one they are left closed (``secrets`` is None).
        Plaintext secrets of entries written by older versions need no key.
        """
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in data.items()
        }
        webhook_id = text["webhook_id"]
        secrets: tuple[str, ...] | None
        if text.get("secrets_enc"):
            secrets = None
            if cipher is not None:
                plain = cipher.decrypt(
                    text["secrets_enc"].encode(), f"the signing secrets of webhook {webhook_id}"
                )
                secrets = tuple(json.loads(plain))
        else:
            secrets = tuple(json.loads(text.get("secrets") or "[]"))
        return cls(
            webhook_id=webhook_id,
            administration_id=text["administration_id"],
            token_sha256=text["token_sha256"],
            secrets=secrets,
            enabled=text.get("enabled", "1") == "1",
            url=text.get("url", ""),
            events=tuple(json.loads(text.get("events") or "[]")),
            created_at=float(text.get("created_at") or 0),
        )


def seal(secrets: tuple[str, ...], cipher: Cipher) -> str:
    """The ``secrets_enc`` field: a Fernet token of the JSON list."""
    return cipher.encrypt(json.dumps(list(secrets)).encode()).decode()


class SubscriptionStore:
    """Read and write subscriptions with a synchronous Redis client (CLI, workers).

    ``secret_key`` is ``HOOKBIRD_SECRET_KEY``: needed to store signing secrets and to
    read them back, not for entries without secrets or reads with ``decrypt=False``.
    """

    def __init__(self, client: redis.Redis, secret_key: str | None = None) -> None:
        self.redis = client
        self.cipher = cipher(secret_key)

    def add(
        self,
        *,
        webhook_id: str,
        administration_id: str,
        token: str,
        secrets: tuple[str, ...] = (),
        url: str = "",
        events: tuple[str, ...] = (),
        enabled: bool = True,
    ) -> Subscription:
        """Write (or replace) an entry; secrets without a usable key raise SecretKeyError."""
        subscription = Subscription(
            webhook_id=webhook_id,
            administration_id=administration_id,
            token_sha256=token_digest(token),
            secrets=secrets,
            enabled=enabled,
            url=url,
            events=events,
            created_at=time.time(),
        )
        fields: dict[Any, Any] = subscription.to_hash(self.cipher)  # before Redis is touched
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.webhook_key(webhook_id))
        pipe.hset(keys.webhook_key(webhook_id), mapping=fields)
        pipe.sadd(keys.WEBHOOKS_INDEX, webhook_id)
        pipe.execute()
        return subscription

    def get(self, webhook_id: str, *, decrypt: bool = True) -> Subscription | None:
        """One entry; ``decrypt=False`` leaves encrypted secrets closed and needs no key."""
        data = self.redis.hgetall(keys.webhook_key(webhook_id))
        return Subscription.from_hash(data, self.cipher if decrypt else None) if data else None

    def list(self, *, decrypt: bool = True) -> list[Subscription]:
        found = []
        for webhook_id in self.webhook_ids():
            subscription = self.get(webhook_id, decrypt=decrypt)
            if subscription is not None:
                found.append(subscription)
        return found

    def webhook_ids(self) -> builtins.list[str]:
        return sorted(
            raw.decode() if isinstance(raw, bytes) else str(raw)
            for raw in self.redis.smembers(keys.WEBHOOKS_INDEX)
        )

    def plaintext(self) -> builtins.list[str]:
        """Webhooks whose signing secrets are still stored in plaintext (by older versions)."""
        ids = self.webhook_ids()
        pipe = self.redis.pipeline(transaction=False)
        for webhook_id in ids:
            pipe.hget(keys.webhook_key(webhook_id), "secrets")
        return [i for i, raw in zip(ids, pipe.execute(), strict=True) if raw and json.loads(raw)]

    def encrypt(self) -> int:
        """Encrypt every entry's signing secrets with the first key; how many were rewritten.

        Seals the plaintext secrets of older entries, and re-encrypts the others so a
        key dropped after a rotation is no longer needed. Each entry is rewritten in a
        transaction that retries if the entry changes meanwhile.
        """
        rewritten = 0
        for webhook_id in self.webhook_ids():
            key = keys.webhook_key(webhook_id)
            reseal = functools.partial(self._reseal, key)
            if self.redis.transaction(reseal, key, value_from_callable=True):
                rewritten += 1
        return rewritten

    def _reseal(self, key: str, pipe: redis.client.Pipeline) -> Any:
        """Inside ``transaction``: rewrite one watched entry's secrets; True if it did."""
        data = pipe.hgetall(key)
        subscription = Subscription.from_hash(data, self.cipher) if data else None
        if subscription is None or not subscription.secrets:
            return False
        pipe.multi()
        pipe.hset(key, "secrets_enc", seal(subscription.secrets, self.cipher))
        pipe.hdel(key, "secrets")
        return True

    def set_enabled(self, webhook_id: str, enabled: bool) -> bool:
        key = keys.webhook_key(webhook_id)
        if not self.redis.exists(key):
            return False
        self.redis.hset(key, "enabled", "1" if enabled else "0")
        return True

    def delete(self, webhook_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.webhook_key(webhook_id))
        pipe.srem(keys.WEBHOOKS_INDEX, webhook_id)
        deleted, _ = pipe.execute()
        return bool(deleted)
