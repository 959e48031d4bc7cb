"""scripts/mutate: mutants are made, run in a copy of the tree, and survivors named."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "mutate"


def script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("mutate", str(SCRIPT))
    spec = importlib.util.spec_from_loader("mutate", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up by name
    try:
        loader.exec_module(module)
    finally:
        del sys.modules["mutate"]
    return module


def test_every_core_module_and_its_tests_exist() -> None:
    """CORE names files that exist: a moved module or test file must update it."""
    core: dict[str, tuple[str, ...]] = script().CORE
    missing = [p for m, tests in core.items() for p in (m, *tests) if not (ROOT / p).is_file()]
    assert missing == []


def test_every_known_equivalent_mutant_is_still_made() -> None:
    """Each EQUIVALENT entry names a mutant its module still has: one whose line was
    rewritten must be judged again, not kept as a stale excuse."""
    mutate = script()
    stale = []
    for module, entries in mutate.EQUIVALENT.items():
        made = {(m.what, m.source_line) for m in mutate.mutants_of((ROOT / module).read_bytes())}
        stale += [(module, *entry) for entry in entries if entry not in made]
    assert stale == []


def test_the_mutants_of_a_line_and_of_a_lua_script() -> None:
    """Each operator gives its mutant at its line; docstrings and annotations give none;
    operators inside an embedded Lua script are swapped, Lua comments are not."""
    source = b'''"""Docstring with 1 < 2."""
LIMIT: int = 3


def pick(a: int, b: int, flag: bool = False) -> int:
    if a < b and not flag:
        return max(a, b) + 1
    return a


SCRIPT = """
local x = redis.call('GET', KEYS[1])
-- a > b in a comment
if x > 1 then return 1 end
"""
'''
    mutate = script()
    found = {(m.line, m.what) for m in mutate.mutants_of(source)}
    assert found == {
        (2, "3 -> 4"),
        (5, "False -> True"),
        (6, "< -> <="),
        (6, "and -> or"),
        (6, "not x -> x"),
        (7, "return x -> return None"),
        (7, "max -> min"),
        (7, "+ -> -"),
        (7, "1 -> 2"),
        (8, "return x -> return None"),
        (14, "Lua > -> >="),
    }
    for mutant in mutate.mutants_of(source):
        compile(mutant.apply(source), "<mutant>", "exec")


@pytest.mark.slow
def test_a_run_kills_what_the_tests_notice_and_lists_the_rest(tmp_path: Path) -> None:
    """Against a tiny tree: the mutants its test notices are killed, the one it cannot
    see survives and is listed with its line, and the tree itself is left as it was."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    module = "UNUSED = 3\n\n\ndef bigger(a, b):\n    return max(a, b)\n"
    (tmp_path / "pkg" / "mod.py").write_text(module)
    (tmp_path / "tests").mkdir()
    test = "from pkg.mod import bigger\n\n\ndef test_bigger():\n    assert bigger(1, 2) == 2\n"
    (tmp_path / "tests" / "test_mod.py").write_text(test)
    command = [sys.executable, str(SCRIPT), "pkg/mod.py", "--tests", "tests/test_mod.py"]
    result = subprocess.run(
        [*command, "--root", str(tmp_path), "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    table = [line.split() for line in result.stdout.splitlines() if line.startswith("pkg/")]
    assert ["pkg/mod.py", "3", "2", "0", "0", "1"] in table  # tried killed ... survived
    assert "  pkg/mod.py:1  3 -> 4    UNUSED = 3" in result.stdout.splitlines()
    assert (tmp_path / "pkg" / "mod.py").read_text() == module
