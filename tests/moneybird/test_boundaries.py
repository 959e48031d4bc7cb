"""Import boundaries the design depends on."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The command line sits on top of everything; nothing below it may import it.
CLI = ("hookbird.cli", "hookbird.__main__", "hookbird.commands")
EDGES = ("receiver", "workers")


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def _modules(package: str) -> dict[str, Path]:
    """Every module of a top-level package, by dotted name."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imported(path: Path, name: str) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function, as absolute names."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _loaded_by(code: str, *args: str) -> str:
    """What ``code`` prints, run in a fresh interpreter (nothing imported yet)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        cwd=ROOT,
    ).stdout.strip()


def _core() -> dict[str, Path]:
    return {n: p for n, p in _modules("hookbird").items() if not _within(n, CLI)}


def test_the_core_imports_neither_its_edges_nor_the_cli() -> None:
    """No module of hookbird/ outside the CLI names receiver, workers or the CLI in an import."""
    wrong = {
        name: sorted(m for m in _imported(path, name) if _within(m, EDGES + CLI))
        for name, path in _core().items()
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_importing_the_core_loads_neither_its_edges_nor_the_cli() -> None:
    """Importing every core module, one after another in a fresh process, loads no edge
    module and no CLI module, directly or through something it imports."""
    code = (
        "import importlib, sys\n"
        f"edges = {EDGES + CLI!r}\n"
        "inside = tuple(e + '.' for e in edges)\n"
        "def bad():\n"
        "    return {m for m in sys.modules if m in edges or m.startswith(inside)}\n"
        "for name in sys.argv[1:]:\n"
        "    before = bad()\n"
        "    importlib.import_module(name)\n"
        "    for m in sorted(bad() - before):\n"
        "        print(name, m)\n"
    )
    core = sorted(_core())
    assert "hookbird.pushes" in core
    assert "hookbird.moneybird.client" in core
    assert _loaded_by(code, *core) == ""


def test_the_edges_import_neither_each_other_nor_the_cli() -> None:
    """receiver/ and workers/ share only what the core holds, and sit below the CLI."""
    wrong = {}
    for edge in EDGES:
        other = tuple(e for e in EDGES if e != edge)
        for name, path in _modules(edge).items():
            found = sorted(m for m in _imported(path, name) if _within(m, other + CLI))
            if found:
                wrong[name] = found
    assert wrong == {}


def test_receiver_never_loads_the_moneybird_client() -> None:
    """Importing the receiver app loads neither hookbird.moneybird nor httpx2."""
    code = (
        "import sys, receiver.app\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('hookbird.moneybird', 'httpx2')))\n"
        "print(','.join(bad))\n"
    )
    assert _loaded_by(code) == ""


def test_importing_hookbird_testing_loads_no_test_framework() -> None:
    """hookbird.testing imports neither pytest nor hypothesis: a plugin may ship it anywhere."""
    code = (
        "import sys, hookbird.testing\n"
        "print(','.join(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('pytest', '_pytest', 'hypothesis'))))\n"
    )
    assert _loaded_by(code) == ""


def test_no_hookbird_process_loads_hookbird_testing() -> None:
    """The receiver, the workers and the CLI never load hookbird.testing."""
    code = (
        "import sys, receiver.app, workers.worker, workers.jobs, hookbird.cli\n"
        "print('hookbird.testing' in sys.modules)\n"
    )
    assert _loaded_by(code) == "False"


def test_no_production_module_imports_hookbird_testing() -> None:
    """Not even lazily, inside a function: only tests and plugins' tests import it."""
    found = sorted(
        name
        for package in ("hookbird", *EDGES)
        for name, path in _modules(package).items()
        if name != "hookbird.testing"
        and any(_within(m, ("hookbird.testing",)) for m in _imported(path, name))
    )
    assert found == []


def test_the_moneybird_client_never_imports_its_resources() -> None:
    """No import in client.py, nor in what it imports, reaches moneybird/resources.py."""
    import ast
    from pathlib import Path

    import hookbird

    root = Path(hookbird.__file__).resolve().parent.parent

    def imports_of(module: str) -> set[str]:
        """Every hookbird module ``module`` names in an import, at any depth or guard."""
        path = root.joinpath(*module.split("."))
        source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        package = module if path.is_dir() else module.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        named = {name for name in found if name.startswith("hookbird")}
        return {
            name
            for name in named
            if root.joinpath(*name.split(".")).with_suffix(".py").is_file()
            or root.joinpath(*name.split(".")).is_dir()
        }

    seen: set[str] = set()
    todo = ["hookbird.moneybird.client"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(imports_of(module))
    assert "hookbird.moneybird.client" in seen
    assert "hookbird.moneybird.errors" in seen  # the walk follows imports
    assert "hookbird.moneybird.resources" not in seen


def test_the_generated_moneybird_code_never_imports_its_resources() -> None:
    """resources → _generated → client: nothing under moneybird/_generated/ names
    resources, nor the hookbird.moneybird package (whose __init__ loads resources), so
    the generated layer stays below it."""
    generated = {
        name: path
        for name, path in _modules("hookbird").items()
        if _within(name, ("hookbird.moneybird._generated",))
    }
    assert "hookbird.moneybird._generated.api" in generated
    allowed = (
        "hookbird.moneybird.client",
        "hookbird.moneybird.errors",
        "hookbird.moneybird.responses",
        "hookbird.moneybird.filters",
        "hookbird.moneybird._generated",
    )
    wrong = {
        name: sorted(
            m for m in _imported(path, name) if m.startswith("hookbird") and not _within(m, allowed)
        )
        for name, path in generated.items()
    }
    assert {name: found for name, found in wrong.items() if found} == {}
