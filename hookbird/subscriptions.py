"""The subscription store: which webhooks hookbird accepts pushes for.

Multi-webhook setups (a SaaS with many customer administrations) keep one entry per
Moneybird webhook in Redis, keyed by ``webhook_id``: the administration it belongs
to, a SHA-256 digest of its token (the token itself is never stored), its signing
secret(s) and whether it is enabled. ``hookbird webhooks add`` writes an entry by
hand; registering through the API (a later command) writes the same entry.

Single-webhook setups need no entry: ``HOOKBIRD_WEBHOOK_TOKEN`` covers every push
whose ``webhook_id`` is not in the store.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis

from hookbird import keys


def token_digest(token: str) -> str:
    """The hex SHA-256 of a webhook token: what the store keeps and the receiver compares."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class Subscription:
    webhook_id: str
    administration_id: str
    token_sha256: str = field(repr=False)
    secrets: tuple[str, ...] = field(default=(), repr=False)
    enabled: bool = True
    url: str = ""
    events: tuple[str, ...] = ()
    created_at: float = 0.0

    def to_hash(self) -> dict[str, str]:
        return {
            "webhook_id": self.webhook_id,
            "administration_id": self.administration_id,
            "token_sha256": self.token_sha256,
            "secrets": json.dumps(list(self.secrets)),
            "enabled": "1" if self.enabled else "0",
            "url": self.url,
            "events": json.dumps(list(self.events)),
            "created_at": repr(self.created_at),
        }

    @classmethod
    def from_hash(cls, data: Mapping[bytes | str, bytes | str]) -> Subscription:
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in data.items()
        }
        return cls(
            webhook_id=text["webhook_id"],
            administration_id=text["administration_id"],
            token_sha256=text["token_sha256"],
            secrets=tuple(json.loads(text.get("secrets") or "[]")),
            enabled=text.get("enabled", "1") == "1",
            url=text.get("url", ""),
            events=tuple(json.loads(text.get("events") or "[]")),
            created_at=float(text.get("created_at") or 0),
        )


class SubscriptionStore:
    """Read and write subscriptions with a synchronous Redis client (CLI, workers)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

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
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.webhook_key(webhook_id))
        fields: dict[Any, Any] = subscription.to_hash()
        pipe.hset(keys.webhook_key(webhook_id), mapping=fields)
        pipe.sadd(keys.WEBHOOKS_INDEX, webhook_id)
        pipe.execute()
        return subscription

    def get(self, webhook_id: str) -> Subscription | None:
        data = self.redis.hgetall(keys.webhook_key(webhook_id))
        return Subscription.from_hash(data) if data else None

    def list(self) -> list[Subscription]:
        found = []
        for raw in sorted(self.redis.smembers(keys.WEBHOOKS_INDEX)):
            webhook_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            subscription = self.get(webhook_id)
            if subscription is not None:
                found.append(subscription)
        return found

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
