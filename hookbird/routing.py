"""Which handlers a push reaches: a :class:`Router` of handler functions, without I/O.

Like gidgethub's router, each concern keeps its own ``router`` and they compose
(``Router(billing.router, crm.router)``). A route names an exact Moneybird event, an
event group (every event whose name starts with it) or ``"*"``, optionally narrowed
to one ``entity_type``; matching is :func:`hookbird.catalog.matches`. A handler is
known by a stable name, ``module:function``, used in logs, job descriptions, the
per-handler outcome records and the CLI, so renaming a function is a visible change.

A route with ``batch=N`` (and ``window=S``) is a batch route: its handler takes a list
of up to N events and the Context, and answers per event (:data:`BatchResult`); how
the workers collect and run batches is :mod:`workers.batching`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from hookbird import catalog

if TYPE_CHECKING:
    from hookbird.context import Context
    from hookbird.events import Event

HandlerFunc = Callable[["Event", "Context"], Any]
#: What a batch handler returns: None (every event handled), or the events that failed,
#: event id -> the exception each failed with (retried or dead-lettered on its own).
BatchResult = Mapping[str, BaseException] | None
BatchHandlerFunc = Callable[[list["Event"], "Context"], BatchResult]
#: Largest ``batch=``: Moneybird's synchronization endpoints take 100 ids per call.
MAX_BATCH = 100
#: Default and longest ``window=`` (seconds) a batch route collects events for.
DEFAULT_WINDOW, MAX_WINDOW = 2.0, 60.0


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
    func: Callable[..., Any] = field(compare=False)
    name: str
    #: skip pushes that echo hookbird's own writes (``event.own_write``)
    skip_own_writes: bool = False
    #: a batch route: up to this many events per call (0: one event per call)
    batch: int = 0
    #: seconds a batch route collects events before the batch runs
    window: float = 0.0

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
        if self.batch:
            text += f" batch {self.batch}/{self.window:g}s"
        return text


@dataclass(frozen=True)
class Handler:
    """A handler function a push reaches, with the routes that brought it there."""

    name: str
    func: Callable[..., Any] = field(compare=False)
    latest_only: bool
    skip_own_writes: bool = False
    #: a batch handler (see :mod:`workers.batching`): up to ``batch`` events per call
    batch: int = 0
    window: float = 0.0


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

    @overload
    def on(
        self,
        pattern: str,
        *,
        entity_type: str | None = None,
        latest_only: bool | None = None,
        skip_own_writes: bool = False,
        batch: None = None,
        window: float | None = None,
    ) -> Callable[[HandlerFunc], HandlerFunc]: ...

    @overload
    def on(
        self,
        pattern: str,
        *,
        entity_type: str | None = None,
        latest_only: bool | None = None,
        skip_own_writes: bool = False,
        batch: int,
        window: float | None = None,
    ) -> Callable[[BatchHandlerFunc], BatchHandlerFunc]: ...

    def on(
        self,
        pattern: str,
        *,
        entity_type: str | None = None,
        latest_only: bool | None = None,
        skip_own_writes: bool = False,
        batch: int | None = None,
        window: float | None = None,
    ) -> Callable[[Any], Any]:
        """Decorator: run the function for pushes whose ``action`` matches ``pattern``.

        ``skip_own_writes``: not for a push about a version this hookbird's own handlers
        wrote through ``ctx.moneybird`` (``event.own_write``), the echo of a two-way sync.

        ``latest_only`` (default: only for batch routes): skip a push about an older
        version of the entity than the handler already handled.

        ``batch=N`` (1 to 100), ``window=S`` (seconds, default 2): the function takes
        ``(events, ctx)``, up to N events (one per entity) collected for at most S
        seconds, and returns None or ``{event_id: exception}`` for the events that
        failed; see docs/handlers.md, "Batch handlers".
        """

        def register(func: Any) -> Any:
            self.add(
                pattern,
                func,
                entity_type=entity_type,
                latest_only=latest_only,
                skip_own_writes=skip_own_writes,
                batch=batch,
                window=window,
            )
            return func

        return register

    def add(
        self,
        pattern: str,
        func: HandlerFunc | BatchHandlerFunc,
        *,
        entity_type: str | None = None,
        latest_only: bool | None = None,
        skip_own_writes: bool = False,
        batch: int | None = None,
        window: float | None = None,
    ) -> None:
        """Register ``func`` for ``pattern`` (what ``on()`` does, without the decorator)."""
        if not pattern:
            raise RoutingError("a route needs an event name, an event group or '*'")
        if batch is None and window is not None:
            raise RoutingError("window= goes with batch=N: it is how long a batch collects")
        if batch is not None and not 1 <= batch <= MAX_BATCH:
            raise RoutingError(f"batch= takes 1 to {MAX_BATCH} events, not {batch}")
        if window is not None and not 0 < window <= MAX_WINDOW:
            raise RoutingError(f"window= takes more than 0 and at most {MAX_WINDOW:g} s")
        if not catalog.is_known(pattern):
            close = catalog.suggest(pattern)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            warnings.warn(
                f"{pattern!r} is not an official Moneybird event or group{hint} "
                "It is routed as a group (actions starting with it).",
                UnknownEventWarning,
                stacklevel=3,
            )
        size = batch or 0
        span = (window or DEFAULT_WINDOW) if size else 0.0
        latest = bool(size) if latest_only is None else latest_only
        name = handler_name(func)
        self._add(Route(pattern, entity_type, latest, func, name, skip_own_writes, size, span))

    def _add(self, route: Route) -> None:
        for existing in self._routes:
            if existing.name == route.name and existing.func is not route.func:
                raise RoutingError(
                    f"two different functions are both named {route.name!r}; "
                    "give one of them another name"
                )
            if existing.name == route.name and bool(existing.batch) != bool(route.batch):
                raise RoutingError(
                    f"{route.name!r} is routed both as a batch handler and as a handler of "
                    "one event: a function takes either (events, ctx) or (event, ctx)"
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
        routes that matched says so, and skips own writes only if all of them say so;
        a batch handler takes the first matching route's ``batch`` and ``window``.
        """
        found: dict[str, Handler] = {}
        for route in self._routes:
            if not route.matches(action, entity_type):
                continue
            seen = found.get(route.name)
            if seen is None:
                found[route.name] = Handler(
                    route.name,
                    route.func,
                    route.latest_only,
                    route.skip_own_writes,
                    route.batch,
                    route.window,
                )
            else:
                found[route.name] = Handler(
                    route.name,
                    route.func,
                    seen.latest_only or route.latest_only,
                    seen.skip_own_writes and route.skip_own_writes,
                    seen.batch,
                    seen.window,
                )
        return list(found.values())
