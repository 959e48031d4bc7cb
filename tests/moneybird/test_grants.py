"""OAuth grants: one token pair per grant, re-authorisation, the refresh lock, the state."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import redis
from cryptography.fernet import Fernet

from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import Credential, CredentialError, CredentialStore
from hookbird.moneybird.oauth import (
    OAuthApp,
    ReauthorizationNeeded,
    StateMismatch,
    StoredTokens,
    exchange,
    verify_state,
)
from tests.fake_moneybird import FakeMoneybird

# _close_made_clients: test_oauth's autouse fixture, closing what the helpers here make too
from tests.moneybird.test_oauth import _close_made_clients, _made, app_for  # noqa: F401

KEY = Fernet.generate_key().decode()
TWO = ("1001", "1002")


@pytest.fixture
def fake2() -> Iterator[FakeMoneybird]:
    """A fake Moneybird where one grant sees two administrations."""
    with FakeMoneybird(administrations=TWO).serve() as running:
        yield running


def _client(fake: FakeMoneybird, redis_client: redis.Redis, **kwargs: Any) -> Client:
    tokens = StoredTokens(CredentialStore(redis_client, KEY), app=app_for(fake), **kwargs)
    _made.append(Client(base_url=fake.api_url, tokens=tokens, redis=redis_client, retries=0))
    return _made[-1]


def _grant(fake: FakeMoneybird, redis_client: redis.Redis, expired: bool = False) -> Credential:
    with httpx2.Client() as http:
        credential = exchange(app_for(fake), fake.issue_code(), http)
    if expired:
        credential = Credential(credential.access_token, credential.refresh_token, time.time() - 1)
    CredentialStore(redis_client, KEY).put_grant(credential, list(TWO))
    return credential


def test_two_administrations_on_one_grant_both_work_after_a_refresh(
    fake2: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """A refresh for one administration of a grant serves the other too: one token call."""
    old = _grant(fake2, redis_client)
    del fake2.oauth_tokens[old.access_token]  # revoked on Moneybird's side: 401, refresh
    client = _client(fake2, redis_client)
    assert client.administration(TWO[0]).contacts.sync() == []
    assert client.administration(TWO[1]).contacts.sync() == []
    # A worker that never refreshed itself reads the same fresh pair.
    other = _client(fake2, redis_client)
    assert other.administration(TWO[1]).contacts.sync() == []
    assert fake2.stats["refreshes"] == 1
    store = CredentialStore(redis_client, KEY)
    assert store.grant_of(TWO[0]) == store.grant_of(TWO[1]) is not None


def test_older_per_administration_copies_move_into_one_grant_at_their_refresh(
    fake2: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """Entries an older hookbird copied to each administration keep working: the first
    refresh moves every copy of that pair into one grant, so the second needs no refresh."""
    with httpx2.Client() as http:
        old = exchange(app_for(fake2), fake2.issue_code(), http)
    store = CredentialStore(redis_client, KEY)
    for administration in TWO:
        store.put(administration, old)  # the old layout
    del fake2.oauth_tokens[old.access_token]
    client = _client(fake2, redis_client)
    assert client.administration(TWO[0]).contacts.sync() == []
    assert client.administration(TWO[1]).contacts.sync() == []
    assert fake2.stats["refreshes"] == 1
    assert store.grant_of(TWO[0]) == store.grant_of(TWO[1]) is not None


def test_invalid_grant_marks_the_grant_and_the_next_job_makes_no_token_call(
    fake2: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """Moneybird refusing the refresh token marks the grant; later calls for any of its
    administrations fail at once, permanently, naming `hookbird oauth url`."""
    old = _grant(fake2, redis_client, expired=True)
    assert old.refresh_token is not None
    del fake2.refresh_tokens[old.refresh_token]  # the customer revoked hookbird's access
    client = _client(fake2, redis_client)
    with pytest.raises(ReauthorizationNeeded, match="hookbird oauth url"):
        client.administration(TWO[0]).contacts.sync()
    assert fake2.stats["refreshes"] == 1
    for administration in TWO:
        fresh_worker = _client(fake2, redis_client)
        with pytest.raises(errors.PermanentError, match="hookbird oauth url"):
            fresh_worker.administration(administration).contacts.sync()
    assert fake2.stats["refreshes"] == 1
    assert fake2.stats["requests"] == 0
    marked = CredentialStore(redis_client, KEY).get(TWO[1])
    assert marked is not None
    assert marked.needs_reauth
    assert "invalid_grant" in marked.needs_reauth
    assert not marked.access_token
    assert marked.refresh_token is None


def test_a_lock_lost_mid_refresh_does_not_overwrite_a_newer_token(
    redis_client: redis.Redis,
) -> None:
    """Refresher A loses its lock while Moneybird is slow; B refreshes and stores a pair;
    A's late answer is dropped and A uses B's pair, which stays stored."""
    with FakeMoneybird(administrations=TWO, spend_refresh_tokens=False).serve() as fake:
        _grant(fake, redis_client, expired=True)
        fake.hold_next_refresh = release = threading.Event()
        outcome: list[Any] = []

        def refresher_a() -> None:
            try:
                outcome.append(_client(fake, redis_client).tokens.token_for(TWO[0]))  # type: ignore[union-attr]
            except errors.MoneybirdError as exc:
                outcome.append(exc)

        a = threading.Thread(target=refresher_a)
        a.start()
        assert fake.refresh_held.wait(10)
        locks = redis_client.keys("hookbird:oauth:refresh:*")
        assert len(locks) == 1
        redis_client.delete(*locks)  # as if it expired (a paused Redis, a long GC)
        b_token = _client(fake, redis_client).tokens.token_for(TWO[1])  # type: ignore[union-attr]
        release.set()
        a.join(10)
        assert outcome == [b_token]
        stored = CredentialStore(redis_client, KEY).get(TWO[0])
        assert stored is not None
        assert stored.access_token == b_token
        assert fake.stats["refreshes"] == 2


def test_the_refresh_call_has_an_overall_deadline_the_lock_outlives(
    redis_client: redis.Redis,
) -> None:
    """A token endpoint slower than the deadline: a transient error at the deadline, and
    the lock was set to live longer than that."""
    with FakeMoneybird(administrations=TWO, refresh_delay=3.0).serve() as fake:
        _grant(fake, redis_client, expired=True)
        client = _client(fake, redis_client, refresh_deadline=0.5)
        tokens = client.tokens
        assert isinstance(tokens, StoredTokens)
        assert tokens.lock_timeout > tokens.refresh_deadline
        started = time.monotonic()
        with pytest.raises(errors.TransientError, match=r"within 0\.5 s"):
            tokens.token_for(TWO[0])
        assert time.monotonic() - started < 2.5


def test_authorize_url_always_carries_a_fresh_state_it_returns() -> None:
    """Each authorize URL gets its own random state, returned to keep in the session."""
    app = OAuthApp("cid", "s", "https://saas.example/cb")
    (url1, state1), (url2, state2) = app.authorize_url(), app.authorize_url()
    assert state1 != state2
    assert len(state1) >= 24
    assert f"state={state1}" in url1
    assert f"state={state2}" in url2


def test_a_random_state_never_reads_as_a_command_line_option() -> None:
    """`hookbird oauth exchange --state STATE` takes what `oauth url` printed: a state
    starting with "-" would be refused by the argument parser as an unknown option."""
    app = OAuthApp("cid", "s", "https://saas.example/cb")
    states = [app.authorize_url()[1] for _ in range(300)]
    assert all(state[0].isalnum() for state in states)


def test_verify_state_accepts_only_the_state_sent() -> None:
    """The redirect's state must equal the one sent; missing or different: StateMismatch."""
    verify_state("abc-123", "abc-123")
    for received in (None, "", "abc-124", "abc-123 "):
        with pytest.raises(StateMismatch):
            verify_state("abc-123", received)
    with pytest.raises(StateMismatch):
        verify_state("", "")


def test_rotate_reencrypts_grants_and_entries_so_the_new_key_alone_reads_them(
    redis_client: redis.Redis,
) -> None:
    """Stored under key A; rotated with `B,A`; key B alone then reads every credential."""
    key_b = Fernet.generate_key().decode()
    CredentialStore(redis_client, KEY).put_grant(Credential("at-1", "rt-1"), list(TWO))
    CredentialStore(redis_client, KEY).put("2001", Credential("personal-1", kind="personal"))
    assert CredentialStore(redis_client, f"{key_b},{KEY}").rotate() == (1, 1)
    only_b = CredentialStore(redis_client, key_b)
    got = [only_b.get(a) for a in (*TWO, "2001")]
    assert [c.access_token if c else None for c in got] == ["at-1", "at-1", "personal-1"]
    with pytest.raises(CredentialError, match="HOOKBIRD_SECRET_KEY"):
        CredentialStore(redis_client, KEY).get(TWO[0])
