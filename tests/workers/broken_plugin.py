"""A handler module that cannot be imported: the worker must refuse to start."""

from __future__ import annotations

import hookbird_does_not_exist  # noqa: F401

router = None
