"""Finding handler plugins: the ``hookbird.handlers`` entry points and ``HOOKBIRD_HANDLERS``.

An installed distribution exposes a :class:`~hookbird.Router` under the entry-point
group ``hookbird.handlers``; ``HOOKBIRD_HANDLERS`` names extra modules, each with a
module-level ``router``. Everything found is joined into one Router. A plugin that
cannot be imported, or does not offer a Router, raises :class:`PluginError` naming
it: a worker must refuse to start rather than silently drop a team's handlers.

``HOOKBIRD_HANDLERS`` modules import from the working directory, as with ``python -m``:
``HOOKBIRD_HANDLERS=mymodule hookbird worker`` finds ``./mymodule.py`` whether the
process was started through the ``hookbird`` script, ``python -c`` or the Procfile.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
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


def working_directory_on_path() -> None:
    """Put the working directory first on ``sys.path``, as ``python -m`` does.

    The ``hookbird`` console script starts with its own bin directory there instead,
    so without this a module next to the user would import only under ``python -c``.
    """
    cwd = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def _import_failure(path: str, exc: BaseException) -> str:
    """What is wrong: the module is missing, or it failed inside (its file and line)."""
    if (
        isinstance(exc, ModuleNotFoundError)
        and exc.name
        and (path == exc.name or path.startswith(exc.name + "."))
    ):
        return (
            f"HOOKBIRD_HANDLERS module {path!r} not found: no {exc.name.replace('.', '/')}.py "
            f"(or package) in the working directory {os.getcwd()} or on the Python path.\n"
            "Run hookbird from the folder that holds it, set PYTHONPATH, or install it."
        )
    if isinstance(exc, SyntaxError):
        where = f"{exc.filename}, line {exc.lineno}"
    else:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith("<frozen")
        ]
        where = f"{frames[-1].filename}, line {frames[-1].lineno}" if frames else "?"
    return (
        f"HOOKBIRD_HANDLERS module {path!r} failed while importing ({where}): "
        f"{type(exc).__name__}: {exc}\n"
        "Fix the module or remove it from HOOKBIRD_HANDLERS."
    )


def load_module(path: str) -> Router:
    working_directory_on_path()
    try:
        module = importlib.import_module(path)
    except Exception as exc:
        raise PluginError(_import_failure(path, exc)) from exc
    router = getattr(module, "router", None)
    if router is None:
        raise PluginError(f"HOOKBIRD_HANDLERS module {path!r} has no `router`")
    return _as_router(router, f"HOOKBIRD_HANDLERS module {path!r}")


def _chosen_entry_points(chosen: bool | tuple[str, ...]) -> list[EntryPoint]:
    """The installed plugins to load, by name; every one when ``chosen`` is True."""
    installed = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if chosen is True:
        return installed
    names = set(chosen or ())
    missing = sorted(names - {ep.name for ep in installed})
    if missing:
        have = ", ".join(ep.name for ep in installed) or "none"
        raise PluginError(
            f"HOOKBIRD_ENTRY_POINTS names {', '.join(missing)}, which no installed package "
            f"provides (installed hookbird.handlers entry points: {have}). "
            "Install the plugin, or fix the name."
        )
    return [ep for ep in installed if ep.name in names]


def load_router(settings: Settings) -> Router:
    """Every handler from every plugin, joined into one Router."""
    root = Router()
    if settings.entry_points:
        for ep in _chosen_entry_points(settings.entry_points):
            root.include(load_entry_point(ep), source=_entry_point_source(ep))
    for path in settings.handlers:
        root.include(load_module(path), source=f"HOOKBIRD_HANDLERS module {path}")
    return root
