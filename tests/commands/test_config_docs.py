"""docs/configuration.md is generated from the settings' declarations and kept current."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hookbird.settings import FIELDS, Section, Setting, Settings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "config-docs"


def script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("config_docs", str(SCRIPT))
    spec = importlib.util.spec_from_loader("config_docs", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_configuration_md_is_up_to_date() -> None:
    """`scripts/config-docs --check` passes: run scripts/config-docs after changing settings."""
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_setting_is_documented_with_its_default() -> None:
    """Each variable has a row with its default and meaning."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    for setting in FIELDS:
        default = f"`{setting.default}`" if setting.default is not None else "unset"
        assert f"| `{setting.env}` | {default} |" in text, setting.env


@pytest.mark.parametrize("setting", FIELDS, ids=lambda s: s.env)
def test_every_documented_example_is_accepted(setting: Setting) -> None:
    """The example in the docs is a value hookbird parses."""
    Settings.from_env({setting.env: setting.example}, dotenv=None)


def test_a_newly_declared_setting_gets_a_row_in_its_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generator lists every declaration under its own section, with no list to update."""
    module = script()
    new = Setting(
        "HOOKBIRD_NEW",
        "new",
        "7",
        "A new knob.",
        section=Section.LOGGING,
        example="9",
        parse=lambda _n, raw: raw,
    )
    monkeypatch.setattr(module, "FIELDS", (*FIELDS, new))
    text = module.render()
    logging = text.split("\n## Logging\n")[1].split("\n## ")[0]
    assert "| `HOOKBIRD_NEW` | `7` | `9` | A new knob. |" in logging


def test_every_setting_is_listed_in_its_section() -> None:
    """docs/configuration.md has each declared variable under its declared section."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    sections = dict(part.split("\n", 1) for part in text.split("\n## ")[1:])
    for setting in FIELDS:
        assert f"| `{setting.env}` |" in sections[setting.section], setting.env


def test_the_readme_tables_give_each_setting_its_declared_default() -> None:
    """A README row naming a variable shows the default its declaration gives."""
    declared = {s.env: s.default or "unset" for s in FIELDS}
    checked = 0
    in_table = False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| variable | default |"):
            in_table = True
        in_table = in_table and line.startswith("|")
        if not in_table or not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names = re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0])
        defaults = cells[1].split(", ")
        assert len(defaults) == len(names), line
        for name, default in zip(names, defaults, strict=True):
            assert declared.get(name) == default, f"README: {name} defaults to {default}"
            checked += 1
    assert checked >= 20  # the receiver's table and the rate budget's
