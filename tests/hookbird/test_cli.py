"""The hookbird CLI: help with examples, the subscription store, clear errors."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest
import redis

from hookbird.subscriptions import SubscriptionStore, token_digest
from tests.support import all_bytes

#: HOOKBIRD_SECRET_KEY for these tests (a valid Fernet key, used only here).
KEY = "aG9va2JpcmQgdGVzdHM6IGFub3RoZXIgdGVzdCBrZXk="


def hookbird(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hookbird.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_every_command_has_help_with_an_example() -> None:
    """hookbird --help lists the commands, and each command's --help ends with an example."""
    from hookbird.cli import build_parser

    parser = build_parser()
    top = parser.format_help()
    assert "examples:" in top
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in actions[0].choices.items():
        assert "example" in sub.format_help(), name


def test_webhooks_add_list_deactivate_delete(redis_url: str, redis_client: redis.Redis) -> None:
    """webhooks add stores a token digest (never the token) and the secret encrypted;
    list/deactivate/delete work."""
    env = {
        "REDIS_URL": redis_url,
        "PATH": "/usr/bin:/bin",
        "HOOKBIRD_LOG_FORMAT": "json",
        "HOOKBIRD_SECRET_KEY": KEY,
    }
    added = hookbird(
        "webhooks",
        "add",
        "--webhook-id",
        "4180",
        "--administration",
        "1234",
        "--token",
        "cli-token-value-123",
        "--secret",
        "cli-secret-value-1",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert "signature required" in added.stdout
    stored = SubscriptionStore(redis_client, KEY).get("4180")
    assert stored is not None
    assert stored.token_sha256 == token_digest("cli-token-value-123")
    assert stored.secrets == ("cli-secret-value-1",)
    raw = b"".join(all_bytes(redis_client.hvals("hookbird:webhook:4180")))
    assert b"cli-token-value-123" not in raw
    assert b"cli-secret-value-1" not in raw

    listed = hookbird("webhooks", "list", env=env)
    assert "4180" in listed.stdout
    assert "1234" in listed.stdout

    assert hookbird("webhooks", "deactivate", "4180", env=env).returncode == 0
    assert SubscriptionStore(redis_client, KEY).get("4180").enabled is False  # type: ignore[union-attr]
    assert hookbird("webhooks", "delete", "4180", env=env).returncode == 0
    missing = hookbird("webhooks", "delete", "4180", env=env)
    assert missing.returncode == 1
    assert "not in the subscription store" in missing.stderr


def test_webhooks_add_with_a_secret_needs_the_secret_key(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """Without HOOKBIRD_SECRET_KEY, add --secret exits 1 saying how to make a key and stores
    nothing; add without a secret needs no key."""
    env = {"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", "HOOKBIRD_LOG_FORMAT": "json"}
    base = ["webhooks", "add", "--administration", "1234", "--token", "cli-token-value-456"]
    refused = hookbird(*base, "--webhook-id", "4181", "--secret", "cli-secret-value-2", env=env)
    assert refused.returncode == 1
    assert "HOOKBIRD_SECRET_KEY is not set" in refused.stderr
    assert "Fernet.generate_key" in refused.stderr
    assert "every hookbird process" in refused.stderr
    assert "cli-secret-value-2" not in refused.stdout + refused.stderr
    assert redis_client.keys("hookbird:webhook*") == []

    unsigned = hookbird(*base, "--webhook-id", "4182", env=env)
    assert unsigned.returncode == 0, unsigned.stderr
    assert "no signing secret" in unsigned.stdout


def test_webhooks_encrypt_seals_plaintext_entries_and_rotates(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """webhooks encrypt seals a plaintext entry an older version wrote, and re-encrypts the
    others with the first key, so the old key can then be dropped."""
    from cryptography.fernet import Fernet

    redis_client.hset(
        "hookbird:webhook:4180",
        mapping={
            "webhook_id": "4180",
            "administration_id": "1234",
            "token_sha256": token_digest("cli-token-value-123"),
            "secrets": '["legacy-secret-value-1"]',
        },
    )
    redis_client.sadd("hookbird:webhooks", "4180")
    SubscriptionStore(redis_client, KEY).add(
        webhook_id="4181", administration_id="1234", token="t", secrets=("sealed-secret-value-2",)
    )
    new_key = Fernet.generate_key().decode()
    env = {"REDIS_URL": redis_url, "PATH": "/usr/bin:/bin", "HOOKBIRD_LOG_FORMAT": "json"}
    done = hookbird("webhooks", "encrypt", env={**env, "HOOKBIRD_SECRET_KEY": f"{new_key},{KEY}"})
    assert done.returncode == 0, done.stderr
    assert "2 webhooks" in done.stdout

    raw = b"".join(all_bytes(redis_client.hvals("hookbird:webhook:4180")))
    assert b"legacy-secret-value-1" not in raw
    assert not redis_client.hexists("hookbird:webhook:4180", "secrets")
    only_new = SubscriptionStore(redis_client, new_key)
    assert only_new.get("4180").secrets == ("legacy-secret-value-1",)  # type: ignore[union-attr]
    assert only_new.get("4181").secrets == ("sealed-secret-value-2",)  # type: ignore[union-attr]


@pytest.mark.parametrize("args", [["webhooks", "list"], ["serve"]])
def test_missing_redis_url_says_what_to_do(args: list[str]) -> None:
    """Without REDIS_URL, commands that need Redis exit 1 and explain how to fix it."""
    result = hookbird(*args, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "REDIS_URL is not set" in result.stderr
    assert "hookbird dev" in result.stderr


def test_bad_setting_exits_with_the_variable_named() -> None:
    """A malformed variable stops the command with a message naming it."""
    result = hookbird("config", env={"PATH": "/usr/bin:/bin", "PORT": "eighty"})
    assert result.returncode == 1
    assert "PORT must be a whole number" in result.stderr


def test_config_never_prints_secrets() -> None:
    """hookbird config shows secrets only as (set)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "HOOKBIRD_WEBHOOK_TOKEN": "cfg-token-value-1",
        "REDIS_URL": "redis://:hunter2pass@localhost:6379/0",
    }
    result = hookbird("config", env=env)
    assert result.returncode == 0
    assert "cfg-token-value-1" not in result.stdout
    assert "hunter2pass" not in result.stdout
    assert "(set)" in result.stdout


def test_config_shows_tunables_whose_names_sound_secret() -> None:
    """HOOKBIRD_SIGNATURE_TOLERANCE is a number of seconds, shown, not hidden as a secret."""
    result = hookbird(
        "config", env={"PATH": "/usr/bin:/bin", "HOOKBIRD_SIGNATURE_TOLERANCE": "120"}
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"^HOOKBIRD_SIGNATURE_TOLERANCE +120$", result.stdout, re.M), result.stdout


def test_every_secret_setting_is_marked_secret() -> None:
    """What log scrubbing treats as secret is exactly what `config` hides."""
    from hookbird.settings import FIELDS, Settings

    marked = {f.env for f in FIELDS if f.secret}
    environ = {f.env: f"value-of-{f.env.lower()}" for f in FIELDS if f.default is None}
    secrets = set(Settings.from_env(environ, dotenv=None).secrets())
    assert {env for env, value in environ.items() if value in secrets} == marked


def test_a_redis_url_without_scheme_is_one_line_not_a_traceback() -> None:
    """REDIS_URL=localhost:6379: commands exit 1 naming the form; doctor shows it as ✗."""
    env = {"PATH": "/usr/bin:/bin", "REDIS_URL": "localhost:6379", "HOOKBIRD_ENTRY_POINTS": "off"}
    listed = hookbird("events", "list", env=env)
    assert listed.returncode == 1
    assert "Traceback" not in listed.stderr
    assert "it takes the form redis://host:port/db" in listed.stderr
    doctor = hookbird("doctor", "--ascii", env=env)
    assert doctor.returncode == 2
    assert "FAIL REDIS_URL 'localhost:6379' is not a Redis URL" in doctor.stdout
    assert "Traceback" not in doctor.stderr


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`hookbird send --list | head -1`: no BrokenPipeError traceback, SIGPIPE's exit code."""
    import fcntl
    import os

    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # smaller than the listing
    proc = subprocess.Popen(
        [sys.executable, "-m", "hookbird.cli", "send", "--list"],
        stdout=write_end,
        stderr=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        assert reader.readline().startswith(b"access_token_created")
    _, err = proc.communicate(timeout=60)
    assert err == b""
    assert proc.returncode == 141
