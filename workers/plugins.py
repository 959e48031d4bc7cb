"""Finding handler plugins: the ``hookbird.handlers`` entry points and ``HOOKBIRD_HANDLERS``.

An installed distribution exposes a :class:`~hookbird.Router` under the entry-point
group ``hookbird.handlers``; ``HOOKBIRD_HANDLERS`` names extra modules, each with a
module-level ``router``. Everything found is joined into one Router. A plugin that
cannot be imported, or does not offer a Router, raises :class:`PluginError` naming
it: a worker must refuse to start rather than silently drop a team's handlers.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points

from hookbird.routing import Router
from hookbird.settings import Settings

ENTRY_POINT_GROUP = "hookbird.handlers"


class PluginError(Exception):
    """A handler plugin could not be loaded; the message names it and says why."""


def _as_router(obj: object, where: str) -> Router:
    if isinstance(obj, Router):
        return obj
    inner = getattr(obj, "router", None)  # an entry point may name the module itself
    if isinstance(inner, Router):
        return inner
    raise PluginError(f"{where} is not a hookbird Router (got {type(obj).__name__})")


def _entry_point_source(ep: EntryPoint) -> str:
    dist = ep.dist
    owner = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"entry point {ep.name} = {ep.value}{owner}"


def load_entry_point(ep: EntryPoint) -> Router:
    source = _entry_point_source(ep)
    try:
        loaded = ep.load()
    except Exception as exc:
        raise PluginError(
            f"handler plugin {source} failed to import: {type(exc).__name__}: {exc}\n"
            "Fix or uninstall that package; the worker will not start without it."
        ) from exc
    return _as_router(loaded, f"handler plugin {source}")


def load_module(path: str) -> Router:
    try:
        module = importlib.import_module(path)
    except Exception as exc:
        raise PluginError(
            f"HOOKBIRD_HANDLERS module {path!r} failed to import: {type(exc).__name__}: {exc}\n"
            "Check the module path (importable from the worker's working directory) "
            "or remove it from HOOKBIRD_HANDLERS."
        ) from exc
    router = getattr(module, "router", None)
    if router is None:
        raise PluginError(f"HOOKBIRD_HANDLERS module {path!r} has no `router`")
    return _as_router(router, f"HOOKBIRD_HANDLERS module {path!r}")


def load_router(settings: Settings) -> Router:
    """Every handler from every plugin, joined into one Router."""
    root = Router()
    if settings.entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            root.include(load_entry_point(ep), source=_entry_point_source(ep))
    for path in settings.handlers:
        root.include(load_module(path), source=f"HOOKBIRD_HANDLERS module {path}")
    return root
