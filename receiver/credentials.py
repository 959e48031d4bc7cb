"""Which credentials a push must match: its webhook's subscription, else the environment's.

Subscriptions are read from Redis and cached in the process for
``HOOKBIRD_SUBSCRIPTION_CACHE_TTL`` seconds, found or not, so a push costs no
extra Redis round trip in the common case. A webhook id that is not subscribed
falls back to ``HOOKBIRD_WEBHOOK_TOKEN`` (single-webhook mode) when one is set.

Stored signing secrets are decrypted with ``HOOKBIRD_SECRET_KEY`` on a cache miss
only. When the key cannot open them, :meth:`CredentialsResolver.resolve` raises
:class:`~hookbird.crypto.SecretKeyError` and nothing is cached: such a push must not
be accepted unverified, nor refused as if it were forged.
"""

from __future__ import annotations

import time

import redis.asyncio

from hookbird import keys
from hookbird.crypto import SecretKeyError
from hookbird.settings import Settings
from hookbird.subscriptions import Subscription, cipher, token_digest
from receiver.verify import Credentials

MAX_CACHED = 10_000


class CredentialsResolver:
    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self.redis = client
        self.ttl = settings.subscription_cache_ttl
        self.cipher = cipher(settings.secret_key)
        self.fallback = (
            Credentials(
                token_sha256=token_digest(settings.webhook_token),
                secrets=settings.webhook_secrets,
            )
            if settings.webhook_token
            else None
        )
        self._cache: dict[str, tuple[float, Credentials | None]] = {}

    async def resolve(self, webhook_id: str | None) -> Credentials | None:
        """The credentials for this webhook id.

        Raises redis errors when Redis is down, and SecretKeyError when the webhook's
        signing secrets cannot be decrypted (key unset or not the one they were stored with).
        """
        if webhook_id is None:
            return self.fallback
        now = time.monotonic()
        cached = self._cache.get(webhook_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        data = await self.redis.hgetall(keys.webhook_key(webhook_id))
        found = self.fallback
        if data:
            subscription = Subscription.from_hash(data, self.cipher)
            if subscription.secrets is None:  # a cipher opens them or raises; never skip them
                raise SecretKeyError(f"the signing secrets of webhook {webhook_id} are closed")
            found = Credentials(
                token_sha256=subscription.token_sha256,
                secrets=subscription.secrets,
                administration_id=subscription.administration_id,
                enabled=subscription.enabled,
                source="subscription",
            )
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[webhook_id] = (now + self.ttl, found)
        return found
