"""Encrypted signing secrets in the receiver: verified with the key, 503 without it.

A push whose webhook's secrets cannot be decrypted is neither accepted unverified nor
refused as forged: it gets 503 and Retry-After, so Moneybird sends it again once
HOOKBIRD_SECRET_KEY is right, and nothing is queued.
"""

from __future__ import annotations

import asyncio
import io
import json

import httpx2
import redis
import redis.asyncio
from cryptography.fernet import Fernet

from hookbird import keys
from hookbird.crypto import Cipher
from hookbird.logs import configure_logging
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore, token_digest
from receiver.credentials import CredentialsResolver
from tests.receiver.conftest import MakeReceiver
from tests.receiver.pushes import push_body, signature_header
from tests.support import all_bytes, as_bytes

URL = "/webhooks/moneybird"
WEBHOOK = "4180000000000000001"
# Values of this file only, so no other test's log scrubbing could hide a leak of them.
TOKEN = "at-rest-webhook-token-0123456789"
SECRET = "at-rest-signing-secret-uvwxyz0123"
KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()


def subscribe(client: redis.Redis) -> None:
    SubscriptionStore(client, KEY).add(
        webhook_id=WEBHOOK, administration_id="123456789", token=TOKEN, secrets=(SECRET,)
    )


def signed_push(**fields: str) -> tuple[bytes, dict[str, str]]:
    body = push_body(webhook_id=WEBHOOK, webhook_token=TOKEN, **fields)
    return body, {"Moneybird-Signature": signature_header(body, secret=SECRET)}


def only_subscriptions(client: redis.Redis) -> bool:
    """Nothing but the subscription store is in Redis: no push stored or queued."""
    return {k.decode() for k in all_bytes(client.keys("*"))} == {
        keys.webhook_key(WEBHOOK),
        keys.WEBHOOKS_INDEX,
    }


def test_encrypted_secret_verifies_pushes(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """With the key: a correctly signed push is accepted, an unsigned one refused."""
    subscribe(redis_client)
    body, signed = signed_push()
    with make_receiver(secret_key=KEY, subscription_cache_ttl=0) as base, httpx2.Client() as http:
        assert http.post(base + URL, content=body).status_code == 401
        assert http.post(base + URL, content=body, headers=signed).json()["status"] == "accepted"


def test_wrong_key_gets_503_queues_nothing_and_logs_the_fix(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """Another key: 503 + Retry-After, nothing stored; the log says which key to set and
    holds no token, secret, key or ciphertext."""
    subscribe(redis_client)
    ciphertext = as_bytes(redis_client.hget(keys.webhook_key(WEBHOOK), "secrets_enc"))
    assert ciphertext
    body, signed = signed_push()
    buffer = io.StringIO()
    configure_logging("debug", "json", stream=buffer)
    try:
        with (
            make_receiver(secret_key=OTHER_KEY, retry_after=23) as base,
            httpx2.Client() as http,
        ):
            response = http.post(base + URL, content=body, headers=signed)
            unsigned = http.post(base + URL, content=push_body(webhook_id=WEBHOOK))
            metrics = http.get(base + "/metrics").text
    finally:
        configure_logging("info", "json")

    assert response.status_code == 503
    assert response.headers["retry-after"] == "23"
    assert unsigned.status_code == 503  # not 401: the push may well be genuine
    assert 'hookbird_pushes_total{outcome="unavailable"} 2.0' in metrics
    assert only_subscriptions(redis_client)

    text = buffer.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    (first, *_) = [line for line in lines if line["event"] == "push not verified"]
    assert first["level"] == "error"
    assert first["webhook_id"] == WEBHOOK
    assert "Set HOOKBIRD_SECRET_KEY to that key" in first["error"]
    for value in (TOKEN, SECRET, KEY, OTHER_KEY, ciphertext.decode()):
        assert value not in text


def test_missing_key_gets_503_and_queues_nothing(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """No HOOKBIRD_SECRET_KEY in the receiver: a signed push is not accepted unverified."""
    subscribe(redis_client)
    body, signed = signed_push()
    with make_receiver(secret_key=None) as base, httpx2.Client() as http:
        response = http.post(base + URL, content=body, headers=signed)
    assert response.status_code == 503
    assert "retry-after" in response.headers
    assert only_subscriptions(redis_client)


def test_plaintext_entry_from_an_older_version_still_verifies(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """An entry with plaintext `secrets`, even without a key: signed 200, unsigned 401."""
    redis_client.hset(
        keys.webhook_key(WEBHOOK),
        mapping={
            "webhook_id": WEBHOOK,
            "administration_id": "123456789",
            "token_sha256": token_digest(TOKEN),
            "secrets": json.dumps([SECRET]),
            "enabled": "1",
        },
    )
    redis_client.sadd(keys.WEBHOOKS_INDEX, WEBHOOK)
    body, signed = signed_push()
    wrong = {"Moneybird-Signature": signature_header(body, secret="not-" + SECRET)}
    with make_receiver(secret_key=None, subscription_cache_ttl=0) as base, httpx2.Client() as http:
        assert http.post(base + URL, content=body).status_code == 401
        assert http.post(base + URL, content=body, headers=wrong).status_code == 401
        assert http.post(base + URL, content=body, headers=signed).json()["status"] == "accepted"


class CountingCipher(Cipher):
    def __init__(self, secret_key: str) -> None:
        super().__init__(secret_key, "webhook signing secrets")
        self.decrypted = 0

    def decrypt(self, token: bytes, whose: str) -> bytes:
        self.decrypted += 1
        return super().decrypt(token, whose)


def test_secrets_are_decrypted_on_a_cache_miss_only(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Ten resolutions within the cache TTL decrypt once."""
    subscribe(redis_client)

    async def resolve_ten() -> tuple[int, tuple[str, ...]]:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            resolver = CredentialsResolver(client, Settings(subscription_cache_ttl=60))
            resolver.cipher = cipher = CountingCipher(KEY)
            found = [await resolver.resolve(WEBHOOK) for _ in range(10)]
        finally:
            await client.aclose()
        assert found[-1] is not None
        return cipher.decrypted, found[-1].secrets

    assert asyncio.run(resolve_ten()) == (1, (SECRET,))
