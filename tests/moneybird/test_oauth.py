"""OAuth and the encrypted credential store: exchange, refresh (once across processes), keys."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import redis
from cryptography.fernet import Fernet

from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import Credential, CredentialError, CredentialStore
from hookbird.moneybird.oauth import OAuthApp, StoredTokens, exchange
from tests.fake_moneybird import FakeMoneybird

KEY = Fernet.generate_key().decode()


_made: list[Client] = []


@pytest.fixture(autouse=True)
def _close_made_clients() -> Iterator[None]:
    """What the helpers below made holds real sockets: closed at the end of each test."""
    yield
    while _made:
        made = _made.pop()
        made.close()
        if isinstance(made.tokens, StoredTokens):
            made.tokens.http.close()


def app_for(fake: FakeMoneybird) -> OAuthApp:
    return OAuthApp(
        client_id=fake.client_id,
        client_secret=fake.client_secret,
        redirect_uri="https://saas.example/moneybird/callback",
        scopes=("sales_invoices", "settings"),
        oauth_url=fake.api_url.replace("/api/v2", "/oauth"),
    )


def test_authorize_url_names_the_chosen_scopes() -> None:
    """The authorize URL carries client id, redirect URI, response_type=code and the scopes."""
    app = OAuthApp("cid", "secret-not-in-url", "https://saas.example/cb", scopes=("documents",))
    url = urlsplit(app.authorize_url(state="xyz")[0])
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://moneybird.com/oauth/authorize"
    assert query == {
        "client_id": ["cid"],
        "redirect_uri": ["https://saas.example/cb"],
        "response_type": ["code"],
        "scope": ["documents"],
        "state": ["xyz"],
    }
    assert "secret-not-in-url" not in app.authorize_url()[0]


def test_unknown_scope_is_refused() -> None:
    """A typo in a scope fails at configuration time, naming the real ones."""
    with pytest.raises(ValueError, match="sales_invoices"):
        OAuthApp("cid", "s", "https://x/cb", scopes=("invoices",))


def test_exchange_turns_a_code_into_a_token_pair(fake: FakeMoneybird) -> None:
    """exchange() posts the code to /oauth/token and returns a usable credential."""
    code = fake.issue_code(("sales_invoices", "settings"))
    with httpx2.Client() as http:
        credential = exchange(app_for(fake), code, http)
    assert credential.refresh_token
    assert credential.scopes == ("sales_invoices", "settings")
    assert credential.expires_at is not None
    assert credential.expires_at > time.time() + 3600
    with httpx2.Client() as http, pytest.raises(errors.Unauthorized):
        exchange(app_for(fake), code, http)  # codes are single-use


def test_store_refuses_without_a_key_and_says_how_to_make_one(redis_client: redis.Redis) -> None:
    """No HOOKBIRD_SECRET_KEY: nothing is stored, and the error shows the command."""
    store = CredentialStore(redis_client, None)
    with pytest.raises(CredentialError, match=r"Fernet\.generate_key"):
        store.put("1", Credential("fake-access-token-abcdef"))
    assert redis_client.keys("hookbird:credential*") == []


def test_credentials_are_encrypted_at_rest(redis_client: redis.Redis) -> None:
    """What Redis holds contains neither token in clear."""
    store = CredentialStore(redis_client, KEY)
    store.put("1", Credential("fake-access-token-abcdef", "fake-refresh-token-ghijkl"))
    raw = redis_client.get("hookbird:credential:1")
    assert raw is not None
    assert b"fake-access-token" not in raw
    assert b"fake-refresh-token" not in raw
    assert store.get("1") == Credential("fake-access-token-abcdef", "fake-refresh-token-ghijkl")
    assert store.administrations() == ["1"]


def test_credentials_are_unreadable_without_the_key(redis_client: redis.Redis) -> None:
    """Another key (or none) cannot read them; a rotated key list can."""
    CredentialStore(redis_client, KEY).put("1", Credential("fake-access-token-abcdef"))
    other = Fernet.generate_key().decode()
    with pytest.raises(CredentialError, match="cannot be decrypted"):
        CredentialStore(redis_client, other).get("1")
    with pytest.raises(CredentialError, match="not set"):
        CredentialStore(redis_client, None).get("1")
    rotated = CredentialStore(redis_client, f"{other},{KEY}").get("1")
    assert rotated is not None
    assert rotated.access_token == "fake-access-token-abcdef"


def _stored_client(fake: FakeMoneybird, redis_client: redis.Redis) -> tuple[Client, StoredTokens]:
    tokens = StoredTokens(CredentialStore(redis_client, KEY), app=app_for(fake))
    _made.append(Client(base_url=fake.api_url, tokens=tokens, redis=redis_client))
    return _made[-1], tokens


def _connect(fake: FakeMoneybird, redis_client: redis.Redis, admin_id: str) -> Credential:
    with httpx2.Client() as http:
        credential = exchange(app_for(fake), fake.issue_code(), http)
    CredentialStore(redis_client, KEY).put(admin_id, credential)
    return credential


def test_expired_token_is_refreshed_before_the_call(
    fake: FakeMoneybird, redis_client: redis.Redis, admin_id: str
) -> None:
    """A token past its expiry is refreshed first; the new pair is stored."""
    old = _connect(fake, redis_client, admin_id)
    store = CredentialStore(redis_client, KEY)
    store.put(admin_id, Credential(old.access_token, old.refresh_token, time.time() - 1))
    client, tokens = _stored_client(fake, redis_client)
    client.administration(admin_id).contacts.sync()
    assert tokens.refreshes == 1
    new = store.get(admin_id)
    assert new is not None
    assert new.access_token != old.access_token
    assert new.refresh_token != old.refresh_token
    # The budget is the administration's, not the (changing) token's.
    assert redis_client.keys("hookbird:rate:api:*") == [
        f"hookbird:rate:api:administration:{admin_id}".encode()
    ]


def test_401_triggers_one_refresh_and_a_retry(
    fake: FakeMoneybird, redis_client: redis.Redis, admin_id: str
) -> None:
    """A token Moneybird no longer accepts is refreshed on the 401 and the call succeeds."""
    old = _connect(fake, redis_client, admin_id)
    del fake.oauth_tokens[old.access_token]  # revoked/expired on Moneybird's side
    client, tokens = _stored_client(fake, redis_client)
    assert client.administration(admin_id).contacts.sync() == []
    assert tokens.refreshes == 1
    assert fake.stats["unauthorized"] == 1


def test_unknown_administration_without_fallback_is_unauthorized(
    fake: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """No stored credential and no personal token: a clear Unauthorized naming the fix."""
    client, _ = _stored_client(fake, redis_client)
    with pytest.raises(errors.Unauthorized, match="hookbird oauth exchange"):
        client.administration("42").contacts.sync()


def _refresh_in_process(
    app: OAuthApp, redis_url: str, key: str, admin_id: str, start: float, out: Any
) -> None:
    tokens = StoredTokens(CredentialStore(redis.Redis.from_url(redis_url), key), app=app)
    time.sleep(max(0.0, start - time.time()))
    out.put(tokens.token_for(admin_id))


@pytest.mark.slow
def test_refresh_raced_by_two_processes_refreshes_once(
    redis_url: str, redis_client: redis.Redis, admin_id: str
) -> None:
    """Two processes finding the same expired token: one refresh, both get its result."""
    with FakeMoneybird(refresh_delay=0.3).serve() as fake:
        old = _connect(fake, redis_client, admin_id)
        CredentialStore(redis_client, KEY).put(
            admin_id, Credential(old.access_token, old.refresh_token, time.time() - 1)
        )
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        start = time.time() + 2.0
        procs = [
            ctx.Process(
                target=_refresh_in_process,
                args=(app_for(fake), redis_url, KEY, admin_id, start, out),
            )
            for _ in range(2)
        ]
        for proc in procs:
            proc.start()
        got = [out.get(timeout=10) for _ in procs]
        for proc in procs:
            proc.join(10)
        assert fake.stats["refreshes"] == 1
        assert got[0] == got[1] != old.access_token
        assert got[0] in fake.oauth_tokens


def test_wrong_key_in_a_worker_is_a_permanent_error_naming_the_fix(
    fake: FakeMoneybird, redis_client: redis.Redis, admin_id: str
) -> None:
    """Credentials stored under another key: Unauthorized (permanent) saying what to do."""
    _connect(fake, redis_client, admin_id)
    other = Fernet.generate_key().decode()
    tokens = StoredTokens(CredentialStore(redis_client, other), app=app_for(fake))
    client = Client(base_url=fake.api_url, tokens=tokens, redis=redis_client)
    with pytest.raises(errors.Unauthorized, match="HOOKBIRD_SECRET_KEY"):
        client.administration(admin_id).contacts.sync()
    assert fake.stats["requests"] == 0
