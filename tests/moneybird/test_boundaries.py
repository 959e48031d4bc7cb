"""Import boundaries the design depends on."""

from __future__ import annotations

import subprocess
import sys


def test_receiver_never_loads_the_moneybird_client() -> None:
    """Importing the receiver app loads neither hookbird.moneybird nor httpx2."""
    code = (
        "import sys, receiver.app\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('hookbird.moneybird', 'httpx2')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


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
