"""`hookbird doctor` judges Redis, the queue, handlers, Moneybird and the clock correctly."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import replace
from email.utils import formatdate
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from hookbird import doctor
from hookbird.cli import main
from hookbird.commands.doctor import check_moneybird, check_signing_secrets, run_checks
from hookbird.doctor import ERROR, OK, WARN, Check
from hookbird.metrics import WEBHOOKS_KEY
from hookbird.redis_server import RedisServer, free_port
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore, token_digest
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.support import as_bytes

HANDLERS = ("tests.workers.sample_handlers",)


def statuses(checks: list[Check], words: str) -> list[str]:
    return [c.status for c in checks if words in c.what]


# -- pure judgements ----------------------------------------------------------------------


def test_redis_judgement() -> None:
    """AOF off or an evicting policy are errors; an old Redis is a warning."""
    good = {"redis_version": "7.2.4", "aof_enabled": 1, "maxmemory_policy": "noeviction"}
    assert {c.status for c in doctor.judge_redis(good)} == {OK}
    bad = {"redis_version": "5.0.7", "aof_enabled": 0, "maxmemory_policy": "allkeys-lru"}
    assert [c.status for c in doctor.judge_redis(bad)] == [WARN, ERROR, ERROR]


def test_clock_judgement() -> None:
    """Skew beyond the signature tolerance is an error, a noticeable one a warning."""
    now = 1_800_000_000.0
    assert doctor.judge_clock(formatdate(now, usegmt=True), now + 1, 300).status == OK
    assert doctor.judge_clock(formatdate(now, usegmt=True), now + 60, 300).status == WARN
    late = doctor.judge_clock(formatdate(now, usegmt=True), now - 400, 300)
    assert late.status == ERROR
    assert "behind" in late.what
    assert doctor.judge_clock(None, now, 300).status == WARN
    assert doctor.judge_clock("yesterday", now, 300).status == WARN


def test_scope_judgement() -> None:
    """Scopes found, refused (403) and not checkable are all named."""
    check = doctor.judge_scopes({"sales_invoices": True, "bank": False, "estimates": None})
    assert check.what == "token scopes: sales_invoices (not: bank) (not checked: estimates)"


def test_signing_secrets_judgement() -> None:
    """Unreadable secrets are an error, plaintext ones a warning naming the fix; all
    encrypted and readable is ok, and nothing stored says nothing."""
    assert list(doctor.judge_signing_secrets(0, [], None, has_key=False)) == []
    (fine,) = doctor.judge_signing_secrets(3, [], None, has_key=True)
    assert fine.status == OK
    (old,) = doctor.judge_signing_secrets(3, ["41", "42"], None, has_key=True)
    assert old.status == WARN
    assert "41, 42" in old.what
    assert old.advice.startswith("run `hookbird webhooks encrypt`")
    (no_key,) = doctor.judge_signing_secrets(1, [str(n) for n in range(7)], None, has_key=False)
    assert "0, 1, 2, 3, 4, …" in no_key.what
    assert "Fernet.generate_key" in no_key.advice
    assert "HOOKBIRD_SECRET_KEY" in no_key.advice
    (broken,) = doctor.judge_signing_secrets(0, [], "set the right key", has_key=True)
    assert broken.status == ERROR
    assert "503" in broken.what
    assert broken.advice == "set the right key"


def test_signature_policy_judgement() -> None:
    """Unsigned stored webhooks and the environment token warn (errors when signatures are
    required and nothing could pass); all signed and required is ok; nothing says nothing."""
    judge = doctor.judge_signature_policy
    assert list(judge([], env_token=False, env_signed=False, required=False)) == []
    (unsigned,) = judge(["41", "42"], env_token=False, env_signed=False, required=False)
    assert unsigned.status == WARN
    assert "2 stored webhooks without a signing secret (41, 42)" in unsigned.what
    assert "HOOKBIRD_REQUIRE_SIGNATURE=true" in unsigned.advice
    (refused,) = judge(["41"], env_token=False, env_signed=False, required=True)
    assert refused.status == ERROR
    (master,) = judge([], env_token=True, env_signed=True, required=False)
    assert master.status == WARN
    assert "HOOKBIRD_WEBHOOK_TOKEN is a master key" in master.what
    assert "token alone" not in master.what
    (bare,) = judge([], env_token=True, env_signed=False, required=False)
    assert "on the token alone" in bare.what
    (dead,) = judge([], env_token=True, env_signed=False, required=True)
    assert dead.status == ERROR
    assert "HOOKBIRD_WEBHOOK_SECRET" in dead.advice
    (fine,) = judge([], env_token=False, env_signed=False, required=True)
    assert fine.status == OK


def test_exit_code_is_the_worst_status() -> None:
    """0 all ok, 1 with a warning, 2 with an error."""
    assert doctor.exit_code([Check(OK, "a")]) == 0
    assert doctor.exit_code([Check(OK, "a"), Check(WARN, "b")]) == 1
    assert doctor.exit_code([Check(ERROR, "a"), Check(WARN, "b")]) == 2


# -- against real Redis servers -----------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("HOOKBIRD_", "MONEYBIRD_")) or name == "REDIS_URL":
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOOKBIRD_ENTRY_POINTS", "off")
    monkeypatch.setenv("HOOKBIRD_HANDLERS", ",".join(HANDLERS))


def test_redis_configured_right(
    redis_url: str,
    redis_client: redis.Redis,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The suite's Redis (AOF, noeviction): Redis lines are ✓, handlers listed; no worker
    and no Moneybird credentials are warnings, so the exit code is 1."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "✓ Redis reachable" in out
    assert "✓ AOF on" in out
    assert "✓ maxmemory-policy noeviction" in out
    assert "✓ handler tests.workers.sample_handlers:" in out
    assert "⚠ no worker is running" in out
    assert "⚠ no Moneybird credentials" in out
    assert "✗" not in out


def test_redis_configured_wrong(
    tmp_path: Path,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A Redis without AOF and with allkeys-lru, and a dead-lettered push: exit 2."""
    from rq import Queue

    server = RedisServer(
        tmp_path / "redis", appendonly=False, extra_args=["--maxmemory-policy", "allkeys-lru"]
    )
    with server:
        connection = redis.Redis.from_url(server.url)
        queue = Queue("hookbird", connection=connection)
        job = queue.enqueue("builtins.print", "x")
        queue.failed_job_registry.add(job, ttl=60, exc_string="boom")
        monkeypatch.setenv("REDIS_URL", server.url)
        assert main(["doctor", "--ascii"]) == 2
        connection.close()
    out = capsys.readouterr().out
    assert "FAIL AOF off" in out
    assert "FAIL maxmemory-policy allkeys-lru" in out
    assert "warn 1 push in the dead letter" in out
    assert "hookbird failed list" in out


def test_unreachable_redis_is_an_error(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening at REDIS_URL: one ✗ line saying what to fix, exit 2."""
    monkeypatch.setenv("REDIS_URL", f"redis://:secret-pw@127.0.0.1:{free_port()}/0")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "✗ Redis at redis://***@127.0.0.1" in out
    assert "secret-pw" not in out


def test_plaintext_signing_secrets_are_a_warning(
    redis_url: str,
    redis_client: redis.Redis,
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An entry an older version wrote with plaintext secrets: ⚠ naming the webhook and
    `hookbird webhooks encrypt`, without printing the secret."""
    redis_client.hset(
        "hookbird:webhook:4180",
        mapping={
            "webhook_id": "4180",
            "administration_id": "1234",
            "token_sha256": token_digest("doctor-token-value"),
            "secrets": json.dumps(["doctor-plaintext-secret-1"]),
        },
    )
    redis_client.sadd("hookbird:webhooks", "4180")
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("HOOKBIRD_SECRET_KEY", Fernet.generate_key().decode())
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "⚠ 1 webhook with signing secrets in plaintext in Redis: 4180" in out
    assert "hookbird webhooks encrypt" in out
    assert "doctor-plaintext-secret-1" not in out


def test_signing_secrets_the_key_cannot_read_are_an_error(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Secrets stored under another key, or no key at all: ✗ saying which key to set;
    readable with the key: ✓."""
    key = Fernet.generate_key().decode()
    SubscriptionStore(redis_client, key).add(
        webhook_id="4180", administration_id="1234", token="t", secrets=("doctor-secret-2",)
    )
    for wrong in (Fernet.generate_key().decode(), None):
        (check,) = check_signing_secrets(
            redis_client, Settings(redis_url=redis_url, secret_key=wrong)
        )
        assert check.status == ERROR
        assert "webhook 4180" in check.advice
        assert "the key they were stored with" in check.advice
    (check,) = check_signing_secrets(redis_client, Settings(redis_url=redis_url, secret_key=key))
    assert check.status == OK


# -- against the fake Moneybird -----------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeMoneybird]:
    with FakeMoneybird().serve() as running:
        yield running


def test_webhooks_compared_with_the_store(
    fake: FakeMoneybird, redis_url: str, redis_client: redis.Redis
) -> None:
    """Stored+active is ✓; a failing last push, a deactivated hook, a hook missing from the
    store, or a stored one Moneybird does not know, is an error (✗): pushes are lost."""
    from hookbird.moneybird import Client

    settings = Settings(
        redis_url=redis_url,
        moneybird_api_token=TOKEN,
        moneybird_api_url=fake.api_url,
        entry_points=False,
        handlers=HANDLERS,
    )
    store = SubscriptionStore(redis_client)
    with Client(settings, redis=redis_client) as api:
        hooks = api.administration(ADMINISTRATION).webhooks
        good = hooks.create("http://127.0.0.1:9/good", ["contact"])
        failing = hooks.create("http://127.0.0.1:9/failing", [])
        off = hooks.create("http://127.0.0.1:9/off", [])
        stranger = hooks.create("http://127.0.0.1:9/stranger", [])
        hooks.deactivate(off["id"])
    for hook in (good, failing, off):
        store.add(webhook_id=hook["id"], administration_id=ADMINISTRATION, token=hook["token"])
    store.add(webhook_id="4180000000000000099", administration_id=ADMINISTRATION, token="t")
    records = fake.records[(ADMINISTRATION, "webhooks")]
    records[good["id"]]["last_http_status"] = 200
    records[failing["id"]]["last_http_status"] = 500

    checks = list(run_checks(settings))
    assert statuses(checks, "Moneybird API reachable") == [OK]
    assert statuses(checks, "clock") == [OK]
    (scopes,) = [c.what for c in checks if c.what.startswith("token scopes")]
    assert "sales_invoices" in scopes
    assert "time_entries" in scopes
    assert statuses(checks, f"webhook {good['id']}") == [OK]
    assert statuses(checks, f"webhook {failing['id']}") == [ERROR]
    assert statuses(checks, f"webhook {off['id']}") == [ERROR]
    assert statuses(checks, f"webhook {stranger['id']}") == [ERROR]
    assert statuses(checks, "webhook 4180000000000000099") == [ERROR]
    assert doctor.exit_code(checks) == 2
    seen = {
        as_bytes(k).decode(): json.loads(v) for k, v in redis_client.hgetall(WEBHOOKS_KEY).items()
    }
    assert {i: (s["active"], s["last_http_status"]) for i, s in seen.items()} == {
        good["id"]: (True, 200),
        failing["id"]: (True, 500),
        off["id"]: (False, None),
        stranger["id"]: (True, None),
    }  # for hookbird_webhook_* on /metrics


def test_single_webhook_token_counts_as_stored(
    fake: FakeMoneybird, redis_url: str, redis_client: redis.Redis
) -> None:
    """A hook whose token is HOOKBIRD_WEBHOOK_TOKEN is accepted without a store entry."""
    from hookbird.moneybird import Client

    base = Settings(redis_url=redis_url, moneybird_api_token=TOKEN, moneybird_api_url=fake.api_url)
    with Client(base, redis=redis_client) as api:
        hook = api.administration(ADMINISTRATION).webhooks.create("http://127.0.0.1:9/h", [])
    settings = replace(base, webhook_token=hook["token"])
    checks = list(check_moneybird(redis_client, settings))
    assert statuses(checks, f"webhook {hook['id']}") == [OK]


def test_wrong_token_is_an_error(
    fake: FakeMoneybird, redis_url: str, redis_client: redis.Redis
) -> None:
    """Moneybird answering 401 is ✗ with a pointer to MONEYBIRD_API_TOKEN."""
    settings = Settings(
        redis_url=redis_url, moneybird_api_token="not-the-token", moneybird_api_url=fake.api_url
    )
    checks = list(check_moneybird(redis_client, settings))
    assert [c.status for c in checks] == [ERROR]
    assert "MONEYBIRD_API_TOKEN" in checks[0].advice


def test_unsigned_webhooks_and_the_environment_token_are_warnings(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A stored webhook without secrets and HOOKBIRD_WEBHOOK_TOKEN: two ⚠, naming the webhook
    and calling the environment token a master key."""
    SubscriptionStore(redis_client).add(
        webhook_id="4190", administration_id="1234", token="doctor-unsigned-token"
    )
    settings = Settings(redis_url=redis_url, webhook_token="doctor-environment-token")
    checks = list(check_signing_secrets(redis_client, settings))
    assert statuses(checks, "without a signing secret (4190)") == [WARN]
    assert statuses(checks, "HOOKBIRD_WEBHOOK_TOKEN is a master key") == [WARN]
    assert not any("doctor-environment-token" in c.what + c.advice for c in checks)
