"""``hookbird webhooks`` and ``hookbird oauth`` against the fake Moneybird and a real Redis."""

from __future__ import annotations

import io
import json

import pytest
import redis
from cryptography.fernet import Fernet

from hookbird import metrics
from hookbird.cli import main
from hookbird.moneybird import Client, errors
from hookbird.moneybird.credentials import CredentialStore
from hookbird.moneybird.oauth import token_key
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore, token_digest
from receiver.app import create_app
from tests.fake_moneybird import TOKEN, FakeMoneybird
from tests.support import all_bytes, serve_in_thread

#: HOOKBIRD_SECRET_KEY for these tests: register stores the signing secret encrypted.
KEY = Fernet.generate_key().decode()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, fake: FakeMoneybird) -> dict[str, str]:
    values = {
        "REDIS_URL": redis_url,
        "MONEYBIRD_API_TOKEN": TOKEN,
        "MONEYBIRD_API_URL": fake.api_url,
        "HOOKBIRD_LOG_FORMAT": "json",
        "HOOKBIRD_LOG_LEVEL": "warning",
        "HOOKBIRD_SECRET_KEY": KEY,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir("/")  # no stray .env
    return values


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def register(
    capsys: pytest.CaptureFixture[str], admin_id: str, url: str, *options: str
) -> tuple[int, str, str]:
    """``hookbird webhooks register --administration admin_id --url url [options]``."""
    return run(capsys, "webhooks", "register", "--administration", admin_id, "--url", url, *options)


def test_register_stores_token_and_secret_so_the_receiver_accepts_pushes(
    env: dict[str, str],
    fake: FakeMoneybird,
    redis_url: str,
    redis_client: redis.Redis,
    admin_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """register creates the webhook (unwrapped, enabled_events), stores id/token/secret,
    and the receiver accepts the next signed push from Moneybird at once."""
    receiver = create_app(Settings(redis_url=redis_url, secret_key=KEY))
    with serve_in_thread(receiver) as base:
        url = f"{base}/webhooks/moneybird"
        code, out, err = register(
            capsys, admin_id, url, "--events", "sales_invoice_state_changed_to_paid,contact"
        )
        assert code == 0, err
        webhook_id = out.strip().splitlines()[-1].splitlines()[-1]
        body = fake.requests[-1][3]
        assert body == {
            "url": url,
            "enabled_events": ["sales_invoice_state_changed_to_paid", "contact"],
        }
        hook = fake.records[(admin_id, "webhooks")][webhook_id]
        stored = SubscriptionStore(redis_client, KEY).get(webhook_id)
        assert stored is not None
        assert stored.token_sha256 == token_digest(hook["token"])
        assert stored.secrets == (hook["secret"],)
        raw = b"".join(all_bytes(redis_client.hvals(f"hookbird:webhook:{webhook_id}")))
        assert hook["secret"].encode() not in raw
        assert fake.pushes == [(url, 200)]  # the test_webhook push on registration
        status = fake.push(
            webhook_id,
            "sales_invoice_state_changed_to_paid",
            "SalesInvoice",
            {"id": "496081400000000001", "state": "paid"},
        )
        assert status == 200


def test_register_without_a_secret_key_refuses_before_creating_the_webhook(
    env: dict[str, str],
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Moneybird shows a webhook's secret only once: without a key to store it encrypted,
    register exits 1 saying how to make one, and creates nothing in Moneybird."""
    monkeypatch.delenv("HOOKBIRD_SECRET_KEY")
    code, _, err = register(capsys, admin_id, "http://127.0.0.1:9/x")
    assert code == 1
    assert "HOOKBIRD_SECRET_KEY is not set" in err
    assert "Fernet.generate_key" in err
    assert [p for _m, p, *_ in fake.requests if "/webhooks" in p] == []  # not even created
    assert redis_client.keys("hookbird:webhook*") == []


def test_unknown_event_gets_a_warning_with_the_closest_names(
    env: dict[str, str], admin_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event name not in Moneybird's list is warned about, naming real ones."""
    code, _, err = register(
        capsys, admin_id, "http://127.0.0.1:9/nowhere", "--events", "sales_invoice_saved"
    )
    assert code == 0
    assert "'sales_invoice_saved' is not a Moneybird event" in err
    assert "sales_invoice_" in err.split("did you mean", 1)[1]


def test_list_merges_moneybird_with_the_store(
    env: dict[str, str],
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """list shows Moneybird's webhooks with last_http_status next to the store's state."""
    remote_only = fake.add(
        "webhooks",
        {
            "url": "https://elsewhere.example/hook",
            "last_http_status": 500,
            "deactivated_at": None,
            "token": "t" * 24,
            "secret": "s" * 64,
        },
    )
    SubscriptionStore(redis_client).add(
        webhook_id="77", administration_id=admin_id, token="local-token-value-1"
    )
    code, out, _ = run(capsys, "webhooks", "list")
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows[remote_only["id"]][2:5] == ["active", "missing", "500"]
    assert rows["77"][2:4] == ["missing", "enabled"]


def test_list_leaves_the_webhooks_state_for_metrics_and_delete_removes_it(
    env: dict[str, str],
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What list read from Moneybird (active, last_http_status) is kept for /metrics."""
    failing = fake.add(
        "webhooks",
        {"url": "https://a.example/hook", "last_http_status": 503, "deactivated_at": "x"},
    )
    assert run(capsys, "webhooks", "list")[0] == 0
    state = json.loads(redis_client.hget(metrics.WEBHOOKS_KEY, failing["id"]) or "{}")
    assert state["active"] is False
    assert state["last_http_status"] == 503
    code = run(capsys, "webhooks", "delete", failing["id"], "--administration", admin_id)[0]
    assert code == 0
    assert not redis_client.hexists(metrics.WEBHOOKS_KEY, failing["id"])


def test_deactivate_activate_delete_reach_moneybird_and_the_store(
    env: dict[str, str],
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """deactivate/activate/delete call the API, then update the subscription store."""
    _code, out, _ = register(capsys, admin_id, "http://127.0.0.1:9/x")
    webhook_id = out.strip().splitlines()[-1]
    hooks = fake.records[(admin_id, "webhooks")]
    store = SubscriptionStore(redis_client, KEY)
    assert run(capsys, "webhooks", "deactivate", webhook_id)[0] == 0
    assert hooks[webhook_id]["deactivated_at"] is not None
    assert store.get(webhook_id).enabled is False  # type: ignore[union-attr]
    assert run(capsys, "webhooks", "activate", webhook_id)[0] == 0
    assert hooks[webhook_id]["deactivated_at"] is None
    assert store.get(webhook_id).enabled is True  # type: ignore[union-attr]
    assert run(capsys, "webhooks", "delete", webhook_id)[0] == 0
    assert webhook_id not in hooks
    assert store.get(webhook_id) is None
    assert [m for m, p, *_ in fake.requests if "/webhooks/" in p] == ["PATCH", "PATCH", "DELETE"]


def test_api_error_exits_non_zero_with_what_to_do(
    env: dict[str, str],
    admin_id: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A refused token exits 1 naming the setting to check, never printing the token."""
    monkeypatch.setenv("MONEYBIRD_API_TOKEN", "revoked-token-value-123")
    code, _, err = register(capsys, admin_id, "http://127.0.0.1:9/x")
    assert code == 1
    assert "401" in err
    assert "MONEYBIRD_API_TOKEN" in err
    assert "revoked-token-value-123" not in err


def test_oauth_url_and_exchange_store_encrypted_credentials(
    env: dict[str, str],
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """oauth url names the scopes; exchange stores the token for each administration it sees;
    without HOOKBIRD_SECRET_KEY it refuses before spending the code."""
    monkeypatch.delenv("HOOKBIRD_SECRET_KEY")
    monkeypatch.setenv("MONEYBIRD_OAUTH_CLIENT_ID", fake.client_id)
    monkeypatch.setenv("MONEYBIRD_OAUTH_CLIENT_SECRET", fake.client_secret)
    monkeypatch.setenv("MONEYBIRD_OAUTH_URL", fake.api_url.replace("/api/v2", "/oauth"))
    monkeypatch.setenv("MONEYBIRD_OAUTH_SCOPES", "sales_invoices settings")
    code, out, _ = run(capsys, "oauth", "url", "--state", "s1")
    assert code == 0
    assert "scope=sales_invoices+settings" in out
    assert "state=s1" in out

    grant = fake.issue_code()
    code, _, err = run(capsys, "oauth", "exchange", grant)
    assert code == 1
    assert "Fernet.generate_key" in err
    assert grant in fake.codes  # not spent

    key = Fernet.generate_key().decode()
    monkeypatch.setenv("HOOKBIRD_SECRET_KEY", key)
    code, out, err = run(capsys, "oauth", "exchange", grant)
    assert code == 0, err
    assert f"connected administration {admin_id}" in out
    stored = CredentialStore(redis_client, key).get(admin_id)
    assert stored is not None
    assert stored.access_token in fake.oauth_tokens
    assert json.dumps(stored.access_token)[1:-1] not in out + err

    # With only OAuth credentials, list asks Moneybird about the connected administrations.
    hook = fake.add("webhooks", {"url": "https://hooks.example/x", "deactivated_at": None})
    monkeypatch.delenv("MONEYBIRD_API_TOKEN")
    code, out, err = run(capsys, "webhooks", "list")
    assert code == 0, err
    assert hook["id"] in out


def test_cli_waits_for_the_budget_and_says_so(
    env: dict[str, str],
    admin_id: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the budget spent, a CLI command waits for a slot and tells the user."""
    monkeypatch.setenv("HOOKBIRD_RATE_LIMIT", "1")
    monkeypatch.setenv("HOOKBIRD_RATE_WINDOW", "0.6")
    monkeypatch.setenv("HOOKBIRD_RATE_MARGIN", "0")
    assert run(capsys, "webhooks", "list", "--administration", admin_id)[0] == 0
    code, _, err = run(capsys, "webhooks", "list", "--administration", admin_id)
    assert code == 0
    assert "Moneybird rate budget spent: waiting" in err


def test_add_token_stores_a_personal_token_workers_then_use(
    env: dict[str, str],
    fake: FakeMoneybird,
    admin_id: str,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """oauth add-token checks the token against the administration, stores it encrypted, and
    a worker client without MONEYBIRD_API_TOKEN uses it (budget counted per token)."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("HOOKBIRD_SECRET_KEY", key)
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{TOKEN}\n"))
    code, out, err = run(capsys, "oauth", "add-token", "--administration", admin_id, "--stdin")
    assert code == 0, err
    assert TOKEN not in out + err
    stored = CredentialStore(redis_client, key).get(admin_id)
    assert stored is not None
    assert stored.kind == "personal"
    settings = Settings(moneybird_api_url=fake.api_url, secret_key=key)
    with Client.for_worker(settings, redis_client) as worker:
        assert worker.administration(admin_id).contacts.sync() == []
        with pytest.raises(errors.Unauthorized, match="no Moneybird credentials"):
            worker.administration("999").contacts.sync()
    assert [k.decode() for k in all_bytes(redis_client.keys("hookbird:rate:api:*"))] == [
        f"hookbird:rate:api:{token_key(TOKEN)}"
    ]
