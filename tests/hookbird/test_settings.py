"""Settings are read once from the environment and .env, and bad values fail loudly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import pytest

from hookbird.settings import FIELDS, Setting, Settings, SettingsError, read_dotenv


def test_defaults_are_safe() -> None:
    """With nothing configured: 1 MiB cap, 300 s tolerance, 7-day dedup, queue hookbird."""
    settings = Settings.from_env({}, dotenv=None)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.signature_tolerance == 300
    assert settings.dedup_ttl == 7 * 24 * 3600
    assert settings.queue == "hookbird"
    assert settings.redis_url is None
    assert settings.moneybird_api_url == "https://moneybird.com/api/v2"


def test_values_are_parsed() -> None:
    """Numbers, lists and choices are converted; secrets lists split on commas."""
    settings = Settings.from_env(
        {
            "REDIS_URL": "redis://r:6379/1",
            "HOOKBIRD_MAX_BODY_BYTES": "2_048",
            "HOOKBIRD_WEBHOOK_SECRET": "new-secret, old-secret",
            "HOOKBIRD_LOG_FORMAT": "JSON",
            "HOOKBIRD_REDIS_TIMEOUT": "0.25",
            "MONEYBIRD_API_URL": "http://127.0.0.1:9000/api/v2/",
        },
        dotenv=None,
    )
    assert settings.redis_url == "redis://r:6379/1"
    assert settings.max_body_bytes == 2048
    assert settings.webhook_secrets == ("new-secret", "old-secret")
    assert settings.log_format == "json"
    assert settings.redis_timeout == 0.25
    assert settings.moneybird_api_url == "http://127.0.0.1:9000/api/v2"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HOOKBIRD_MAX_BODY_BYTES", "big", "HOOKBIRD_MAX_BODY_BYTES must be a whole number"),
        ("HOOKBIRD_MAX_BODY_BYTES", "0", "must be at least 1"),
        ("HOOKBIRD_SIGNATURE_TOLERANCE", "-1", "must be at least 1"),
        ("HOOKBIRD_REDIS_TIMEOUT", "soon", "must be a number"),
        ("HOOKBIRD_LOG_LEVEL", "loud", "must be one of debug, info, warning, error"),
        ("PORT", "http", "PORT must be a whole number"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, message: str) -> None:
    """A bad value raises SettingsError naming the variable and what it expects."""
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value}, dotenv=None)


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    """.env supplies values; a variable set in the environment overrides it."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nexport HOOKBIRD_QUEUE='from-file'\nPORT=9000\n\n")
    settings = Settings.from_env({"PORT": "9100"}, dotenv=dotenv)
    assert settings.queue == "from-file"
    assert settings.port == 9100


def test_broken_dotenv_line_is_reported(tmp_path: Path) -> None:
    """A .env line without = names the file and line."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("OK=1\nnot a setting\n")
    with pytest.raises(SettingsError, match=r"\.env:2"):
        read_dotenv(dotenv)


def test_secrets_are_hidden_from_repr() -> None:
    """repr(settings) never shows a token or secret."""
    settings = Settings(
        webhook_token="tok-123456789",
        webhook_secrets=("sec-123456789",),
        moneybird_api_token="api-123456789",
        secret_key="key-123456789",
    )
    text = repr(settings)
    for secret in settings.secrets():
        assert secret not in text


def test_every_field_is_documented() -> None:
    """Every Settings attribute has an environment variable with a description."""
    documented = {f.attr for f in FIELDS}
    assert documented == set(Settings.__dataclass_fields__)
    assert all(f.doc for f in FIELDS)


@pytest.mark.parametrize(("tolerance", "ttl"), [("300", "599"), ("600", "900"), ("60", "60")])
def test_a_dedup_ttl_shorter_than_twice_the_tolerance_is_refused(tolerance: str, ttl: str) -> None:
    """A dedup key must outlive every signature that could replay its push."""
    environ = {"HOOKBIRD_SIGNATURE_TOLERANCE": tolerance, "HOOKBIRD_DEDUP_TTL": ttl}
    with pytest.raises(SettingsError, match=r"HOOKBIRD_DEDUP_TTL .* at least twice"):
        Settings.from_env(environ, dotenv=None)


def test_a_dedup_ttl_of_exactly_twice_the_tolerance_is_accepted() -> None:
    """The floor itself is fine."""
    environ = {"HOOKBIRD_SIGNATURE_TOLERANCE": "300", "HOOKBIRD_DEDUP_TTL": "600"}
    assert Settings.from_env(environ, dotenv=None).dedup_ttl == 600


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOOKBIRD_WEBHOOK_TOKEN", "change-me"),
        ("HOOKBIRD_WEBHOOK_TOKEN", " Change-Me "),
        ("HOOKBIRD_WEBHOOK_SECRET", "a-real-secret-value,change-me-old"),
    ],
)
def test_the_examples_placeholder_is_refused_with_a_way_to_make_a_real_one(
    name: str, value: str
) -> None:
    """change-me as a token or secret: the message names the variable and how to make one."""
    settings = Settings.from_env({name: value}, dotenv=None)  # config and doctor still load
    with pytest.raises(SettingsError, match=name) as caught:
        settings.refuse_placeholders()
    assert "secrets.token_urlsafe(32)" in str(caught.value)
    Settings.from_env({name: "a-real-random-value"}, dotenv=None).refuse_placeholders()


@pytest.mark.parametrize("command", ["serve", "worker", "dev"])
def test_serve_worker_and_dev_refuse_the_placeholder_token(command: str, tmp_path: Path) -> None:
    """`hookbird serve|worker|dev` with HOOKBIRD_WEBHOOK_TOKEN=change-me exit 1 at once,
    saying how to make a real token (a command that starts anyway is killed and fails)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOOKBIRD_WEBHOOK_TOKEN": "change-me",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached
        "PORT": "1",  # nor bound
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "hookbird", command],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, err = child.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
        pytest.fail(f"`hookbird {command}` started with the placeholder token")
    assert child.returncode == 1
    assert "HOOKBIRD_WEBHOOK_TOKEN is still the placeholder 'change-me'" in err
    assert "secrets.token_urlsafe(32)" in err
    assert not (tmp_path / ".hookbird").exists()  # dev stopped before making anything


def admits(hint: Any, value: object) -> bool:
    """Whether ``value`` has the annotated type (in the shapes Settings' annotations take)."""
    if isinstance(hint, types.UnionType):
        return any(admits(arg, value) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if get_origin(hint) is tuple:
        item = get_args(hint)[0]
        return isinstance(value, tuple) and all(isinstance(part, item) for part in value)
    if hint in (int, float):
        return type(value) is hint  # not a bool for an int, not an int for a float
    return isinstance(value, hint)


@pytest.mark.parametrize("setting", FIELDS, ids=lambda s: s.env)
def test_each_declared_default_and_example_parse_to_the_fields_type(setting: Setting) -> None:
    """The default (or unset value) and the parsed example fit the annotation; the default
    text set explicitly changes nothing."""
    hint = get_type_hints(Settings)[setting.attr]
    assert admits(hint, getattr(Settings(), setting.attr))
    example = Settings.from_env({setting.env: setting.example}, dotenv=None)
    assert admits(hint, getattr(example, setting.attr))
    if setting.default is not None:
        assert Settings.from_env({setting.env: setting.default}, dotenv=None) == Settings()


@pytest.mark.parametrize("setting", [s for s in FIELDS if s.secret], ids=lambda s: s.env)
def test_a_setting_declared_secret_never_shows_in_repr(setting: Setting) -> None:
    """Whatever a secret variable holds is blanked in logs and left out of repr(settings)."""
    value = "value-of-a-secret-0123456789"
    settings = Settings.from_env({setting.env: value}, dotenv=None)
    assert value in settings.secrets()
    assert value not in repr(settings)
