"""The subscription store keeps signing secrets encrypted and still reads older entries."""

from __future__ import annotations

import json

import pytest
import redis
from cryptography.fernet import Fernet

from hookbird.crypto import SecretKeyError
from hookbird.subscriptions import SubscriptionStore, token_digest
from tests.support import all_bytes, as_bytes

KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()
SECRET = "store-signing-secret-abcdefghij"
ROTATED = "store-signing-secret-klmnopqrst"


def legacy_entry(client: redis.Redis, webhook_id: str, secrets: list[str]) -> None:
    """An entry as hookbird wrote it before secrets were encrypted."""
    client.hset(
        f"hookbird:webhook:{webhook_id}",
        mapping={
            "webhook_id": webhook_id,
            "administration_id": "1234",
            "token_sha256": token_digest("store-token-value"),
            "secrets": json.dumps(secrets),
            "enabled": "1",
            "url": "",
            "events": "[]",
            "created_at": "0.0",
        },
    )
    client.sadd("hookbird:webhooks", webhook_id)


def test_secrets_round_trip_encrypted(redis_client: redis.Redis) -> None:
    """Both secrets come back with the key; Redis holds a Fernet token, neither secret."""
    store = SubscriptionStore(redis_client, KEY)
    store.add(webhook_id="41", administration_id="1234", token="t", secrets=(SECRET, ROTATED))

    got = store.get("41")
    assert got is not None
    assert got.secrets == (SECRET, ROTATED)
    raw = redis_client.hgetall("hookbird:webhook:41")
    assert b"secrets" not in raw
    assert as_bytes(raw[b"secrets_enc"]).startswith(b"gAAAAA")  # a Fernet token
    everything = b"".join(all_bytes(raw.values()))
    assert SECRET.encode() not in everything
    assert ROTATED.encode() not in everything


def test_storing_secrets_without_a_key_is_refused_and_writes_nothing(
    redis_client: redis.Redis,
) -> None:
    """No HOOKBIRD_SECRET_KEY: the error says how to make one and where to set it."""
    store = SubscriptionStore(redis_client, None)
    with pytest.raises(SecretKeyError) as caught:
        store.add(webhook_id="41", administration_id="1234", token="t", secrets=(SECRET,))
    message = str(caught.value)
    assert "HOOKBIRD_SECRET_KEY is not set" in message
    assert "Fernet.generate_key" in message
    assert "every hookbird process" in message
    assert redis_client.keys("*") == []


def test_a_subscription_without_secrets_needs_no_key(redis_client: redis.Redis) -> None:
    """Token-only webhooks are stored and read without HOOKBIRD_SECRET_KEY."""
    store = SubscriptionStore(redis_client, None)
    store.add(webhook_id="42", administration_id="1234", token="t")
    got = store.get("42")
    assert got is not None
    assert got.secrets == ()
    assert not got.signed


def test_reading_with_the_wrong_or_no_key_raises_and_names_the_fix(
    redis_client: redis.Redis,
) -> None:
    """Encrypted secrets never read back as 'no secrets': the wrong key or none raises."""
    SubscriptionStore(redis_client, KEY).add(
        webhook_id="41", administration_id="1234", token="t", secrets=(SECRET,)
    )
    with pytest.raises(SecretKeyError, match="not the key they were stored with") as wrong:
        SubscriptionStore(redis_client, OTHER_KEY).get("41")
    with pytest.raises(SecretKeyError, match="HOOKBIRD_SECRET_KEY is not set") as unset:
        SubscriptionStore(redis_client, None).list()
    for caught in (wrong, unset):
        assert "webhook 41" in str(caught.value)
        assert "the key they were stored with" in str(caught.value)
        assert SECRET not in str(caught.value)


def test_reading_without_decrypting_needs_no_key(redis_client: redis.Redis) -> None:
    """The CLI lists and finds entries without the key; their secrets stay closed."""
    SubscriptionStore(redis_client, KEY).add(
        webhook_id="41", administration_id="1234", token="t", secrets=(SECRET,)
    )
    (listed,) = SubscriptionStore(redis_client, None).list(decrypt=False)
    assert listed.administration_id == "1234"
    assert listed.secrets is None
    assert listed.signed


def test_a_plaintext_entry_from_an_older_version_is_still_read(
    redis_client: redis.Redis,
) -> None:
    """Older entries keep working, with or without a key, and are reported as plaintext."""
    legacy_entry(redis_client, "43", [SECRET])
    legacy_entry(redis_client, "44", [])
    for key in (None, KEY):
        got = SubscriptionStore(redis_client, key).get("43")
        assert got is not None
        assert got.secrets == (SECRET,)
    assert SubscriptionStore(redis_client, None).plaintext() == ["43"]


def test_encrypt_seals_plaintext_entries_and_moves_old_ones_to_the_first_key(
    redis_client: redis.Redis,
) -> None:
    """After `encrypt` with new,old keys no plaintext is left and the new key alone reads all."""
    legacy_entry(redis_client, "43", [SECRET])
    SubscriptionStore(redis_client, KEY).add(
        webhook_id="41", administration_id="1234", token="t", secrets=(ROTATED,)
    )
    SubscriptionStore(redis_client, KEY).add(webhook_id="42", administration_id="1234", token="t")

    assert SubscriptionStore(redis_client, f"{OTHER_KEY},{KEY}").encrypt() == 2

    only_new = SubscriptionStore(redis_client, OTHER_KEY)
    assert only_new.plaintext() == []
    assert [s.secrets for s in only_new.list()] == [(ROTATED,), (), (SECRET,)]
    assert SECRET.encode() not in b"".join(all_bytes(redis_client.hvals("hookbird:webhook:43")))
