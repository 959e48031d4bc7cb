"""Debian's chromium, headless, driven by Playwright: for tests and the screenshot script.

No browser is downloaded: Playwright starts the ``chromium`` on PATH (``.ci/run``
installs it with apt). :func:`chromium` says why it cannot when either is missing, so
a test can skip with that reason.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    if shutil.which("chromium") is None:
        return "no chromium on PATH (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(**context: Any) -> Iterator[Any]:
    """A fresh page in a headless chromium; closed, with its browser, afterwards."""
    from playwright.sync_api import sync_playwright

    path = shutil.which("chromium")
    assert path is not None, missing()
    # Chromium's sandbox needs user namespaces, which root in a container lacks.
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            page = browser.new_context(**context).new_page()
            yield page
        finally:
            browser.close()
