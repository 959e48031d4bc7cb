"""`hookbird send` builds pushes like Moneybird's and the real receiver accepts them."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from hookbird import catalog, pushes
from hookbird.cli import main
from hookbird.settings import Settings
from hookbird.stored import unpack_push
from receiver.app import create_app
from tests.support import serve_in_thread

TOKEN = "send-tests-webhook-token-0123"
SECRET = "send-tests-signing-secret"


def all_ids_are_strings(value: Any, key: str = "") -> bool:
    if isinstance(value, dict):
        return all(all_ids_are_strings(v, k) for k, v in value.items())
    if isinstance(value, list):
        return all(all_ids_are_strings(v, key) for v in value)
    if key == "id" or key.endswith("_id"):
        return value is None or isinstance(value, str)
    return True


def test_signature_is_moneybirds_hmac_over_timestamp_and_body() -> None:
    """v1 is hex HMAC-SHA256 of "{t}.{body}", one per secret, computed independently here."""
    push = pushes.build_push(
        "contact_created",
        {"id": "1"},
        entity_type="Contact",
        administration_id="9",
        webhook_id="7",
        token=TOKEN,
        secrets_=("old", "new"),
        now=1_700_000_000,
    )
    header = push.headers["Moneybird-Signature"]
    parts = header.split(",")
    assert parts[0] == "t=1700000000"
    for part, secret in zip(parts[1:], ("old", "new"), strict=True):
        expected = hmac.new(secret.encode(), b"1700000000." + push.body, hashlib.sha256)
        assert part == f"v1={expected.hexdigest()}"
    assert push.headers["Idempotency-Key"] == push.idempotency_key
    assert push.headers["User-Agent"] == pushes.USER_AGENT


def test_every_official_event_builds_a_push_with_string_ids() -> None:
    """All 343 event names get an entity_type and an entity whose IDs are strings."""
    names = list(catalog.events())
    assert len(names) == 343
    for action in names:
        entity_type, entity = pushes.entity_for(action, "123")
        push = pushes.build_push(
            action,
            entity,
            entity_type=entity_type,
            administration_id="123",
            webhook_id="1",
            token=TOKEN,
        )
        data = json.loads(push.body)
        assert data["action"] == action
        assert entity_type
        assert entity_type[0].isupper()
        assert isinstance(data["entity_id"], str)
        assert all_ids_are_strings(data), action


def test_samples_follow_the_event() -> None:
    """Common events carry the spec's sample for their resource; state changes set the state."""
    assert pushes.entity_for("contact_created", "5")[1]["company_name"]
    entity_type, invoice = pushes.entity_for("sales_invoice_state_changed_to_paid", "5")
    assert (entity_type, invoice["state"], invoice["administration_id"]) == (
        "SalesInvoice",
        "paid",
        "5",
    )
    assert pushes.entity_for("time_entry_created", "5")[0] == "TimeEntry"
    assert pushes.entity_for("payment_registered", "5")[0] == "Payment"
    assert pushes.entity_for("estimate_created", "5")[0] == "Estimate"
    assert pushes.entity_for("document_saved", "5")[0] == "Document"
    for name in pushes.SAMPLE_NAMES:
        assert all_ids_are_strings(pushes.sample(name)), name


def test_test_webhook_is_the_registration_check() -> None:
    """test_webhook has no webhook_id and carries the token as `token`."""
    push = pushes.build_push(
        "test_webhook", None, entity_type=None, administration_id="9", webhook_id="7", token=TOKEN
    )
    assert json.loads(push.body) == {
        "administration_id": "9",
        "action": "test_webhook",
        "token": TOKEN,
    }


@pytest.fixture
def receiver(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The real receiver (token and signature required); the CLI's environment cleared."""
    monkeypatch.chdir(tmp_path)
    for name in list(__import__("os").environ):
        if name.startswith(("HOOKBIRD_", "MONEYBIRD_")) or name in ("HOST", "PORT", "REDIS_URL"):
            monkeypatch.delenv(name)
    settings = Settings(redis_url=redis_url, webhook_token=TOKEN, webhook_secrets=(SECRET,))
    with serve_in_thread(create_app(settings)) as base:
        yield f"{base}/webhooks/moneybird"


def stored_events(client: redis.Redis) -> list[dict[str, Any]]:
    found = []
    for key in client.scan_iter("hookbird:event:*"):
        raw = unpack_push(client.get(key)).get("body")
        if raw is not None:
            found.append(json.loads(raw))
    return found


def send(*args: str) -> int:
    return main(["send", *args])


def test_signed_pushes_are_accepted_and_stored(
    receiver: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """--count 3 stores three pushes and prints a line per push with status and latency."""
    code = send(
        "contact_created",
        "--url",
        receiver,
        "--token",
        TOKEN,
        "--secret",
        SECRET,
        "--count",
        "3",
        "--administration",
        "4242",
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out
    assert len(out) == 3
    assert all(line.startswith("200 accepted") and " ms " in line for line in out)
    events = stored_events(redis_client)
    assert len(events) == 3
    assert {e["administration_id"] for e in events} == {"4242"}
    assert len({e["entity"]["version"] for e in events}) == 3


def test_duplicate_sends_the_same_key_twice(
    receiver: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """--duplicate replays each push with its Idempotency-Key: the receiver says duplicate."""
    code = send(
        "sales_invoice_state_changed_to_paid",
        "--url",
        receiver,
        "--token",
        TOKEN,
        "--secret",
        SECRET,
        "--duplicate",
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert out[0].startswith("200 accepted")
    assert out[1].startswith("200 duplicate")
    assert out[1].endswith("(again)")
    assert len(stored_events(redis_client)) == 1


def test_wrong_secret_is_refused_and_exits_1(
    receiver: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A push signed with another secret gets 401 and `send` exits 1."""
    code = send("contact_created", "--url", receiver, "--token", TOKEN, "--secret", "wrong")
    assert code == 1
    assert capsys.readouterr().out.startswith("401")
    assert stored_events(redis_client) == []


def test_test_webhook_is_answered_and_nothing_stored(
    receiver: str, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """--test-webhook gets 200 "test" and stores nothing."""
    assert send("--test-webhook", "--url", receiver, "--token", TOKEN) == 0
    assert capsys.readouterr().out.startswith("200 test")
    assert stored_events(redis_client) == []


def test_entity_file_and_dev_token_default(
    receiver: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """With no --token the dev token file is used; --entity-file accepts the API's wrapped JSON."""
    (tmp_path / ".hookbird").mkdir()
    (tmp_path / ".hookbird" / "dev-webhook-token").write_text(TOKEN + "\n")
    entity = tmp_path / "contact.json"
    entity.write_text(json.dumps({"contact": {"id": 77, "company_name": "Bakkerij Jansen"}}))
    assert (
        send("contact_changed", "--url", receiver, "--secret", SECRET, "--entity-file", str(entity))
        == 0
    )
    (event,) = stored_events(redis_client)
    assert event["entity_id"] == "77"
    assert event["entity"]["company_name"] == "Bakkerij Jansen"


def test_typo_gets_a_suggestion(receiver: str, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown event name exits 1 naming the closest official ones; nothing is sent."""
    assert send("sales_invoice_state_changed_to_payed", "--url", receiver, "--token", TOKEN) == 1
    err = capsys.readouterr().err
    assert "sales_invoice_state_changed_to_paid" in err
    assert pushes.suggestions("invoice_paid")[0] == "sales_invoice_state_changed_to_paid"


def test_unreachable_receiver_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening: exit 1 and a hint to start `hookbird dev`."""
    monkeypatch.chdir(tmp_path)
    from hookbird.redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}/webhooks/moneybird"
    started = time.monotonic()
    assert send("contact_created", "--url", url, "--token", TOKEN) == 1
    assert "hookbird dev" in capsys.readouterr().err
    assert time.monotonic() - started < 10


def test_a_refusal_shows_the_receivers_reason(capsys: pytest.CaptureFixture[str]) -> None:
    """A receiver whose Redis is down answers 503: send prints its reason and Retry-After."""
    from hookbird.redis_server import free_port

    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", webhook_token=TOKEN, redis_timeout=0.2
    )
    with serve_in_thread(create_app(settings)) as base:
        code = send("contact_created", "--url", f"{base}/webhooks/moneybird", "--token", TOKEN)
    assert code == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(
        x.startswith("503 error: queue unavailable, retry later (Retry-After: 30 s) ")
        for x in lines
    ), out
    assert any(x.startswith("1 push not accepted") for x in lines), out
