"""scripts/bootstrap refuses an interpreter it cannot use, saying which and why."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bootstrap(python: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHON": python}
    return subprocess.run(
        [str(ROOT / "scripts" / "bootstrap")], env=env, capture_output=True, text=True, timeout=30
    )


def test_a_missing_interpreter_is_named_as_missing(tmp_path: Path) -> None:
    """PYTHON pointing at nothing: exit 1 saying no interpreter is there, not that it is old."""
    result = bootstrap(str(tmp_path / "python3.12"))
    assert result.returncode == 1
    assert f"no Python interpreter at '{tmp_path / 'python3.12'}'" in result.stderr
    assert "PYTHON=/path/to/python3.11" in result.stderr


@pytest.mark.parametrize("program", ["/bin/true", "/bin/false"])
def test_a_program_that_is_not_python_311_is_refused(program: str) -> None:
    """A program that is not a Python 3.11+ (true exits 0 to anything) is refused by name."""
    result = bootstrap(program)
    assert result.returncode == 1
    assert f"hookbird needs Python 3.11 or newer; '{program} --version' says:" in result.stderr
