"""The no-op handlers ``bench/memory.py`` and ``tests/test_memory_bounds.py`` run pushes through.

One plain handler and one ``latest_only`` handler, so the per-entity version keys
the workers write are in the key audit too.
"""

from __future__ import annotations

from hookbird import Context, Event, Router

router = Router()


@router.on("*")
def noop(event: Event, ctx: Context) -> None:
    """Does nothing: the memory measured is hookbird's own."""


@router.on("*", latest_only=True)
def noop_latest(event: Event, ctx: Context) -> None:
    """Does nothing, but hookbird records the entity version it saw."""
