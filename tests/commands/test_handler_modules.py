"""HOOKBIRD_HANDLERS modules import from the working directory through the `hookbird`
script itself (as the Procfile runs it), and a failure says what is actually wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The installed console script: it does not put the working directory on sys.path.
SCRIPT = Path(sys.executable).with_name("hookbird")

HANDLER = """\
from hookbird import Router

router = Router()


@router.on("contact_created")
def greet(event, ctx):
    pass
"""

pytestmark = pytest.mark.skipif(not SCRIPT.is_file(), reason="hookbird script not installed")


def script(folder: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "REDIS_"))}
    base.pop("PYTHONPATH", None)
    base.update(HOOKBIRD_ENTRY_POINTS="off", HOOKBIRD_LOG_FORMAT="json", **env)
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=folder,
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_handlers_doctor_and_worker_import_a_module_next_to_the_user(
    tmp_path: Path, redis_url: str
) -> None:
    """`hookbird handlers`, `doctor` and `worker` find ./mymodule.py from HOOKBIRD_HANDLERS."""
    (tmp_path / "mymodule.py").write_text(HANDLER)
    listed = script(tmp_path, "handlers", HOOKBIRD_HANDLERS="mymodule")
    assert listed.returncode == 0, listed.stderr
    assert "mymodule:greet" in listed.stdout
    doctor = script(
        tmp_path, "doctor", "--ascii", HOOKBIRD_HANDLERS="mymodule", REDIS_URL=redis_url
    )
    assert "ok   handler mymodule:greet on contact_created" in doctor.stdout, doctor.stdout
    worker = script(
        tmp_path, "worker", "--burst", HOOKBIRD_HANDLERS="mymodule", REDIS_URL=redis_url
    )
    assert worker.returncode == 0, worker.stderr
    assert '"handlers": 1' in worker.stderr


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "HOOKBIRD_HANDLERS module 'mymodule' not found: no mymodule.py"),
        ("x = (\n", "mymodule.py, line 1): SyntaxError"),
        ("import os\n\nraise RuntimeError('boom')\n", "mymodule.py, line 3): RuntimeError: boom"),
        ("import not_installed_dependency\n", "No module named 'not_installed_dependency'"),
    ],
    ids=["missing", "syntax-error", "raises", "missing-dependency"],
)
def test_a_module_that_does_not_import_is_explained(
    tmp_path: Path, source: str | None, expected: str
) -> None:
    """Missing module vs. an error inside it (with its file and line), never a traceback."""
    if source is not None:
        (tmp_path / "mymodule.py").write_text(source)
    result = script(tmp_path, "handlers", HOOKBIRD_HANDLERS="mymodule")
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    if source is None:
        assert str(tmp_path) in result.stderr
    else:
        assert "not found" not in result.stderr
