"""Where the console sits: above receiver/ and workers/, beside the CLI, off the push path."""

from __future__ import annotations

import subprocess
import sys

from tests.moneybird.test_boundaries import ROOT, _imported, _modules, _within

#: Handler code and the worker loop: the console reads and queues, it never runs handlers.
HANDLER_SIDE = ("workers.plugins", "workers.jobs", "workers.worker", "workers.running")
CLI = ("hookbird.cli", "hookbird.__main__", "hookbird.commands")


def test_the_console_imports_no_handler_code_and_no_cli() -> None:
    wrong = {
        name: sorted(m for m in _imported(path, name) if _within(m, HANDLER_SIDE + CLI))
        for name, path in _modules("console").items()
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_a_receiver_without_the_console_loads_none_of_it() -> None:
    """Importing the receiver app, and building it with the console off, loads neither the
    console nor anything of workers/ (which the console reads through)."""
    code = (
        "import sys\n"
        "from receiver.app import create_app\n"
        "from hookbird.settings import Settings\n"
        "create_app(Settings(redis_url='redis://127.0.0.1:1/0'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('console', 'workers')))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert found.stdout.strip() == "[]"
