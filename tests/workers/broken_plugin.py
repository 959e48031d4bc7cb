"""A handler module that cannot be imported: the worker must refuse to start."""

from __future__ import annotations

# Absent on purpose, for mypy as for Python.
import hookbird_does_not_exist  # type: ignore[import-not-found]  # noqa: F401

router = None
