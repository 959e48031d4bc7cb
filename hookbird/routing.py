"""Which handlers a push reaches: a :class:`Router` of handler functions, without I/O.

Like gidgethub's router, each concern keeps its own ``router`` and they compose
(``Router(billing.router, crm.router)``). A route names an exact Moneybird event, an
event group (every event whose name starts with it) or ``"*"``, optionally narrowed
to one ``entity_type``; matching is :func:`hookbird.catalog.matches`. A handler is
known by a stable name, ``module:function``, used in logs, job descriptions, the
per-handler outcome records and the CLI, so renaming a function is a visible change.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hookbird import catalog

if TYPE_CHECKING:
    from hookbird.context import Context
    from hookbird.events import Event

HandlerFunc = Callable[["Event", "Context"], Any]


class UnknownEventWarning(UserWarning):
    """A route names something that is not an official Moneybird event or group."""


class RoutingError(ValueError):
    """Two different functions claim the same handler name."""


def handler_name(func: Callable[..., Any]) -> str:
    """``module:qualname``, the handler's stable name."""
    module = getattr(func, "__module__", None) or "?"
    qualname = getattr(func, "__qualname__", None) or repr(func)
    return f"{module}:{qualname}"


@dataclass(frozen=True)
class Route:
    """One ``on()`` registration: a pattern, an optional entity type, the handler."""

    pattern: str
    entity_type: str | None
    latest_only: bool
    func: HandlerFunc = field(compare=False)
    name: str
    #: skip pushes that echo hookbird's own writes (``event.own_write``)
    skip_own_writes: bool = False

    def matches(self, action: str, entity_type: str | None) -> bool:
        if self.entity_type is not None and self.entity_type != entity_type:
            return False
        return catalog.matches(self.pattern, action)

    def describe(self) -> str:
        """The route as the CLI shows it, e.g. ``contact [Contact] latest-only``."""
        text = self.pattern
        if self.entity_type:
            text += f" [{self.entity_type}]"
        if self.latest_only:
            text += " latest-only"
        if self.skip_own_writes:
            text += " skip-own-writes"
        return text


@dataclass(frozen=True)
class Handler:
    """A handler function a push reaches, with the routes that brought it there."""

    name: str
    func: HandlerFunc = field(compare=False)
    latest_only: bool
    skip_own_writes: bool = False


class Router:
    """Handler functions keyed by event name, group or ``"*"``; composes with others."""

    def __init__(self, *routers: Router) -> None:
        self._routes: list[Route] = []
        #: Where each handler name came from (set by plugin loading; shown by the CLI).
        self.sources: dict[str, str] = {}
        for router in routers:
            self.include(router)

    def include(self, router: Router, *, source: str | None = None) -> None:
        """Add every route of ``router`` (``source`` labels where they came from)."""
        for route in router.routes:
            self._add(route)
            origin = source or router.sources.get(route.name)
            if origin:
                self.sources.setdefault(route.name, origin)

    def on(
        self,
        pattern: str,
        *,
        entity_type: str | None = None,
        latest_only: bool = False,
        skip_own_writes: bool = False,
    ) -> Callable[[HandlerFunc], HandlerFunc]:
        """Decorator: run the function for pushes whose ``action`` matches ``pattern``.

        ``skip_own_writes``: not for a push about a version this hookbird's own handlers
        wrote through ``ctx.moneybird`` (``event.own_write``), the echo of a two-way sync.
        """

        def register(func: HandlerFunc) -> HandlerFunc:
            self.add(
                pattern,
                func,
                entity_type=entity_type,
                latest_only=latest_only,
                skip_own_writes=skip_own_writes,
            )
            return func

        return register

    def add(
        self,
        pattern: str,
        func: HandlerFunc,
        *,
        entity_type: str | None = None,
        latest_only: bool = False,
        skip_own_writes: bool = False,
    ) -> None:
        """Register ``func`` for ``pattern`` (what ``on()`` does, without the decorator)."""
        if not pattern:
            raise RoutingError("a route needs an event name, an event group or '*'")
        if not catalog.is_known(pattern):
            close = catalog.suggest(pattern)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            warnings.warn(
                f"{pattern!r} is not an official Moneybird event or group{hint} "
                "It is routed as a group (actions starting with it).",
                UnknownEventWarning,
                stacklevel=3,
            )
        self._add(
            Route(pattern, entity_type, latest_only, func, handler_name(func), skip_own_writes)
        )

    def _add(self, route: Route) -> None:
        for existing in self._routes:
            if existing.name == route.name and existing.func is not route.func:
                raise RoutingError(
                    f"two different functions are both named {route.name!r}; "
                    "give one of them another name"
                )
            if existing == route:
                return  # the same router composed twice
        self._routes.append(route)

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def handlers_for(self, action: str, entity_type: str | None = None) -> list[Handler]:
        """Every handler a push reaches, once each, in registration order.

        A handler reached through several routes is ``latest_only`` if any of the
        routes that matched says so, and skips own writes only if all of them say so.
        """
        found: dict[str, Handler] = {}
        for route in self._routes:
            if not route.matches(action, entity_type):
                continue
            seen = found.get(route.name)
            if seen is None:
                found[route.name] = Handler(
                    route.name, route.func, route.latest_only, route.skip_own_writes
                )
            else:
                found[route.name] = Handler(
                    route.name,
                    route.func,
                    seen.latest_only or route.latest_only,
                    seen.skip_own_writes and route.skip_own_writes,
                )
        return list(found.values())
