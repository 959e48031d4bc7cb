"""docs/configuration.md is generated from hookbird.settings.FIELDS and kept current."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from hookbird.settings import FIELDS, Setting, Settings

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
    Settings.from_env({setting.env: script().EXAMPLES[setting.env]}, dotenv=None)


def test_a_new_setting_without_docs_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adding a setting to FIELDS without a section and example stops the generator."""
    module = script()
    monkeypatch.setattr(module, "FIELDS", (*FIELDS, Setting("HOOKBIRD_NEW", "new", "1", "new")))
    with pytest.raises(SystemExit, match="HOOKBIRD_NEW"):
        module.render()
