"""``hookbird oauth`` and ``webhooks add`` with secrets off argv; grants, rotation, doctor."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx2
import pytest
import redis
from cryptography.fernet import Fernet

from hookbird.cli import main
from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import Credential, CredentialStore
from hookbird.moneybird.oauth import StoredTokens
from hookbird.subscriptions import SubscriptionStore, token_digest
from tests.fake_moneybird import FakeMoneybird
from tests.moneybird.test_oauth import app_for

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
TWO = ("1001", "1002")


@pytest.fixture
def fake2() -> Iterator[FakeMoneybird]:
    with FakeMoneybird(administrations=TWO).serve() as running:
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, fake2: FakeMoneybird) -> None:
    values = {
        "REDIS_URL": redis_url,
        "MONEYBIRD_API_URL": fake2.api_url,
        "MONEYBIRD_OAUTH_CLIENT_ID": fake2.client_id,
        "MONEYBIRD_OAUTH_CLIENT_SECRET": fake2.client_secret,
        "MONEYBIRD_OAUTH_URL": fake2.api_url.replace("/api/v2", "/oauth"),
        "MONEYBIRD_OAUTH_REDIRECT_URI": "https://saas.example/moneybird/callback",
        "HOOKBIRD_LOG_FORMAT": "json",
        "HOOKBIRD_LOG_LEVEL": "warning",
        "HOOKBIRD_SECRET_KEY": KEY_A,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MONEYBIRD_API_TOKEN", raising=False)
    monkeypatch.chdir("/")  # no stray .env


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_exchange_from_stdin_stores_one_grant_both_administrations_use(
    env: None,
    fake2: FakeMoneybird,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`oauth exchange -` reads the redirect URL from stdin, checks its state, stores one
    grant; after a refresh for one administration the other still works."""
    code, url, _ = run(capsys, monkeypatch, "oauth", "url")
    assert code == 0
    state = url.split("state=")[1].strip()
    grant = fake2.issue_code()
    redirect = f"https://saas.example/moneybird/callback?code={grant}&state={state}"
    code, out, err = run(
        capsys, monkeypatch, "oauth", "exchange", "-", "--state", state, stdin=redirect + "\n"
    )
    assert code == 0, err
    assert grant not in out + err
    assert "warning" not in err
    assert "2 administrations share one token pair" in out
    store = CredentialStore(redis_client, KEY_A)
    first = store.get(TWO[0])
    assert first is not None
    del fake2.oauth_tokens[first.access_token]  # 401 → refresh
    with httpx2.Client() as http:
        tokens = StoredTokens(store, app=app_for(fake2), http=http)
        with Client(base_url=fake2.api_url, tokens=tokens, redis=redis_client, retries=0) as client:
            assert client.administration(TWO[0]).contacts.sync() == []
            assert client.administration(TWO[1]).contacts.sync() == []
    assert fake2.stats["refreshes"] == 1


def test_exchange_refuses_a_redirect_whose_state_differs_without_spending_the_code(
    env: None,
    fake2: FakeMoneybird,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A redirect carrying another state is refused and its code left unspent."""
    grant = fake2.issue_code()
    redirect = f"https://saas.example/moneybird/callback?code={grant}&state=theirs"
    code, _, err = run(
        capsys, monkeypatch, "oauth", "exchange", "-", "--state", "mine", stdin=redirect
    )
    assert code == 1
    assert "state does not match" in err
    assert grant in fake2.codes


def test_exchange_code_on_argv_still_works_with_one_warning(
    env: None,
    fake2: FakeMoneybird,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old `oauth exchange CODE` works, warning that argv is visible to other users."""
    code, _, err = run(capsys, monkeypatch, "oauth", "exchange", fake2.issue_code())
    assert code == 0, err
    assert err.count("visible to other users") == 1


def test_revoked_grant_shows_in_oauth_list_and_as_an_error_in_doctor(
    env: None,
    fake2: FakeMoneybird,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After invalid_grant, `oauth list` says NEEDS RE-AUTHORISATION and doctor marks it ✗."""
    assert run(capsys, monkeypatch, "oauth", "exchange", "-", stdin=fake2.issue_code())[0] == 0
    store = CredentialStore(redis_client, KEY_A)
    held = store.get(TWO[0])
    assert held is not None
    assert held.refresh_token is not None
    del fake2.oauth_tokens[held.access_token]
    del fake2.refresh_tokens[held.refresh_token]
    with (
        httpx2.Client() as http,
        Client(
            base_url=fake2.api_url,
            tokens=StoredTokens(store, app=app_for(fake2), http=http),
            redis=redis_client,
            retries=0,
        ) as client,
        pytest.raises(errors.Unauthorized),
    ):
        client.administration(TWO[0]).contacts.sync()
    code, out, _ = run(capsys, monkeypatch, "oauth", "list")
    assert code == 0
    assert out.count("NEEDS RE-AUTHORISATION") == 2
    code, out, _ = run(capsys, monkeypatch, "doctor", "--ascii")
    assert code == 2
    assert f"FAIL administration {TWO[0]}: Moneybird refused its OAuth grant" in out


def test_rotate_key_moves_every_credential_to_the_new_key(
    env: None,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stored with key A, rotated under `B,A`: key B alone then reads every credential."""
    store_a = CredentialStore(redis_client, KEY_A)
    store_a.put_grant(Credential("at-1", "rt-1", None, ("settings",)), list(TWO))
    store_a.put("2001", Credential("personal-1", kind="personal"))
    monkeypatch.setenv("HOOKBIRD_SECRET_KEY", f"{KEY_B},{KEY_A}")
    code, out, err = run(capsys, monkeypatch, "oauth", "rotate-key")
    assert code == 0, err
    assert "re-encrypted 1 administration entry and 1 grant" in out
    store_b = CredentialStore(redis_client, KEY_B)
    for administration in (*TWO, "2001"):
        assert store_b.get(administration) is not None
    got = store_b.get(TWO[1])
    assert got is not None
    assert got.access_token == "at-1"


def test_webhooks_add_reads_token_and_secret_from_stdin(
    env: None,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--token - --secret -` read one line each from stdin; nothing echoed, no warning."""
    token, secret = "tok-from-stdin-0123456789", "sec-from-stdin-0123456789"
    code, out, err = run(
        capsys,
        monkeypatch,
        "webhooks",
        "add",
        "--webhook-id",
        "4180",
        "--administration",
        TWO[0],
        "--token",
        "-",
        "--secret",
        "-",
        stdin=f"{token}\n{secret}\n",
    )
    assert code == 0, err
    assert token not in out + err
    assert secret not in out + err
    assert "visible to other users" not in err
    stored = SubscriptionStore(redis_client, KEY_A).get("4180")
    assert stored is not None
    assert stored.token_sha256 == token_digest(token)
    assert stored.secrets == (secret,)


def test_webhooks_add_without_a_token_and_no_terminal_says_how(
    env: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No --token and stdin not a terminal: an error naming `--token -`, nothing stored."""
    code, _, err = run(
        capsys, monkeypatch, "webhooks", "add", "--webhook-id", "1", "--administration", "2"
    )
    assert code == 1
    assert "--token -" in err
