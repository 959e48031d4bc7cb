"""The docs exist, link to files and sections that exist, and the README keeps its two commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    ROOT / "deploy" / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub-style anchors of a Markdown page's headings."""
    found = set()
    for line in page.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            slug = re.sub(r"[^\w\- ]", "", title).replace(" ", "-")
            found.add(slug)
    return found


def test_the_operator_docs_exist() -> None:
    """getting-started, handlers, configuration, operations and security are there."""
    names = {p.name for p in PAGES}
    assert names >= {
        "getting-started.md",
        "handlers.md",
        "configuration.md",
        "operations.md",
        "security.md",
        "performance.md",
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    """Every relative link points at a file that exists, and at a heading that exists."""
    for target in LINK.findall(page.read_text()):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target}"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: {target}"


def test_readme_starts_with_the_two_commands_and_links_the_docs() -> None:
    """The run and test commands stay at the top; every doc page is linked from the README."""
    text = (ROOT / "README.md").read_text()
    top = text[:1200]
    assert "./scripts/dev" in top
    assert "./scripts/test" in top
    for page in (
        "getting-started",
        "handlers",
        "configuration",
        "operations",
        "security",
        "performance",
    ):
        assert f"docs/{page}.md" in text, page


def test_readme_leads_with_what_a_newcomer_needs() -> None:
    """The README runs: what hookbird is, the commands, a first handler, deploying, the rest."""
    text = (ROOT / "README.md").read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    first_handler = next(i for i, h in enumerate(headings) if "handler" in h.lower())
    deploying = headings.index("Deploying")
    assert first_handler < deploying <= 3, headings
    assert text.index("./scripts/test") < text.index("## ")


def test_benchmark_narrative_lives_in_docs_performance() -> None:
    """The README keeps a one-paragraph summary; the measurements are in docs/performance.md."""
    readme = (ROOT / "README.md").read_text()
    performance = (ROOT / "docs" / "performance.md").read_text()
    assert "bench/receiver.py" in performance
    assert "preemption" in performance
    assert "preemption" not in readme
    section = readme.split("## Performance", 1)[1].split("\n## ", 1)[0]
    assert len(section) < 600, len(section)


def test_license_file_matches_the_metadata() -> None:
    """pyproject says MIT, and the MIT licence text ships beside it."""
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_the_handler_testing_example_runs(tmp_path: Path) -> None:
    """docs/handlers.md's test passes under pytest against the page's own crm/handlers.py."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "handlers.md").read_text(), re.S)
    handlers = next(b for b in blocks if b.startswith("# crm/handlers.py\n"))
    test = next(b for b in blocks if b.startswith("# tests/test_handlers.py\n"))
    (tmp_path / "crm").mkdir()
    (tmp_path / "crm" / "__init__.py").write_text("")
    (tmp_path / "crm" / "handlers.py").write_text(handlers)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_handlers.py").write_text(test)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
