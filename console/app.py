"""The console's Starlette app: ``create_console(settings)``, mounted at ``/console``.

Pages (GET): ``/`` recent pushes with filters, paginated (``console.pages.page``) with
the lag chart; ``/events/<id>`` one push's timeline; ``/health`` the queue, the dead
letter, the webhooks and the Moneybird budget. Buttons (POST, CSRF-checked):
``/events/<id>/replay`` and ``/events/<id>/requeue``, which call ``workers.admin`` as
``hookbird events replay`` and ``hookbird failed requeue`` do.

Pages are rendered on the server by Jinja2 with autoescaping on for everything
(actions, entity types, headers and bodies come from whoever sent a push); they
need no JavaScript, and the policy header forbids every script. Redis is read with
a synchronous client in Starlette's thread pool, so a slow page never holds up the
event loop that takes pushes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode

import jinja2
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from console import guard, pages
from hookbird.settings import Settings
from workers.admin import AdminError, replay, requeue

T = TypeVar("T")

#: What an event id in a URL may look like (hookbird's are 28 hex digits).
EVENT_ID = re.compile(r"[0-9A-Za-z_.:-]{1,100}")
#: Largest form body a button sends (a token and nothing else).
MAX_FORM = 4096
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DONE = {"replay": "Replay queued: every handler runs again.", "requeue": "Requeued."}


def utc(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def duration(seconds: float | None) -> str:
    """``850 ms``, ``12.5 s``, ``4 min``, ``3.2 h``: short, for tables."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["utc"] = utc
    env.filters["duration"] = duration
    return env


class Console:
    """The console as one ASGI app, with its Redis client and templates."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = redis.Redis.from_url(
            settings.redis_url or "",
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
        )
        self.env = templates()
        routes = [
            Route("/", self.events_page, methods=["GET"]),
            Route("/events/{event_id}", self.event_page, methods=["GET"]),
            Route("/events/{event_id}/replay", self.replay, methods=["POST"]),
            Route("/events/{event_id}/requeue", self.requeue, methods=["POST"]),
            Route("/health", self.health_page, methods=["GET"]),
        ]
        inner = Starlette(routes=routes)
        inner.router.redirect_slashes = False
        password = settings.console_password
        self.app: ASGIApp = guard.BasicAuth(inner, password) if password else inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def close(self) -> None:
        self.redis.close()

    async def redirect_home(self, request: Request) -> Response:
        """``/console`` → ``/console/`` (a relative Location, never built from Host)."""
        return RedirectResponse("/console/", status_code=307)

    async def _read(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await run_in_threadpool(func, self.redis, *args, **kwargs)

    def _render(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> Response:
        token = request.cookies.get(guard.CSRF_COOKIE) or guard.new_token()
        base = request.scope.get("root_path", "")
        html = self.env.get_template(name).render(base=base, csrf=token, **context)
        response = HTMLResponse(html, status_code=status_code, headers=HEADERS)
        if request.cookies.get(guard.CSRF_COOKIE) != token:
            response.set_cookie(
                guard.CSRF_COOKIE,
                token,
                path=base or "/",
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    async def events_page(self, request: Request) -> Response:
        query = dict(request.query_params)
        filters = pages.Filters.from_query(query)
        start = pages.Cursor.parse(query.get("before", ""))
        found = await self._read(pages.page, filters, start=start)
        chart = await self._read(pages.lag) if start is None else []
        older = None
        if found.next is not None:
            older = "?" + urlencode({**filters.query(), "before": str(found.next)})
        return self._render(
            request,
            "events.html",
            filters=filters,
            outcomes=pages.OUTCOMES,
            since=pages.form_time(filters.since),
            until=pages.form_time(filters.until),
            page=found,
            older=older,
            chart=chart_points(chart),
            scan_limit=pages.SCAN_LIMIT,
        )

    async def event_page(
        self, request: Request, problem: str = "", status_code: int = 200
    ) -> Response:
        event_id = request.path_params["event_id"]
        shown = (
            await self._read(pages.timeline, self.settings.queue, event_id)
            if EVENT_ID.fullmatch(event_id)
            else None
        )
        if shown is None:
            return self._render(request, "missing.html", 404, event_id=event_id)
        done = DONE.get(request.query_params.get("done", ""), "")
        return self._render(request, "event.html", status_code, t=shown, problem=problem, done=done)

    async def health_page(self, request: Request) -> Response:
        queue = await self._read(pages.queue_state, self.settings.queue)
        hooks = await self._read(pages.webhooks)
        lines = await self._read(pages.budget, self.settings)
        return self._render(
            request,
            "health.html",
            queue=queue,
            webhooks=hooks,
            budget=lines,
            single=self.settings.webhook_token is not None,
            now=time.time(),
        )

    async def _form_ok(self, request: Request) -> bool:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                return False
        fields = parse_qs(body.decode("latin-1"))
        given = fields.get(guard.CSRF_FIELD, [""])[0]
        return guard.token_matches(request.cookies.get(guard.CSRF_COOKIE), given)

    async def _act(self, request: Request, action: Callable[..., Any], done: str) -> Response:
        if not await self._form_ok(request):
            return PlainTextResponse(
                "This button's form is stale or came from another site: reload the console "
                "page and press it again.\n",
                status_code=403,
                headers=HEADERS,
            )
        event_id = request.path_params["event_id"]
        if not EVENT_ID.fullmatch(event_id):
            return self._render(request, "missing.html", 404, event_id=event_id)
        try:
            await self._read(action, self.settings.queue, event_id)
        except AdminError as exc:
            return await self.event_page(request, problem=str(exc), status_code=409)
        base = request.scope.get("root_path", "")
        return RedirectResponse(f"{base}/events/{event_id}?done={done}", status_code=303)

    async def replay(self, request: Request) -> Response:
        return await self._act(request, replay, "replay")

    async def requeue(self, request: Request) -> Response:
        return await self._act(request, requeue, "requeue")


#: The lag chart's drawing area, in SVG units.
CHART_WIDTH, CHART_HEIGHT = 600, 120


def chart_points(points: list[pages.LagPoint]) -> dict[str, Any]:
    """The lag chart's dots in SVG coordinates, and its scale, for ``events.html`` to draw."""
    if not points:
        return {"dots": [], "top": 0.0, "first": 0.0, "last": 0.0}
    first, last = points[0].received_at, points[-1].received_at
    span = max(last - first, 1e-9)
    top = max(max(p.seconds for p in points), 1.0)
    dots = [
        {
            "x": round(CHART_WIDTH * ((p.received_at - first) / span if last > first else 0.5), 1),
            "y": round(CHART_HEIGHT * (1 - p.seconds / top), 1),
            "dead": p.status == "dead",
            "label": f"{utc(p.received_at)}: {duration(p.seconds)} ({p.status})",
        }
        for p in points
    ]
    return {"dots": dots, "top": top, "first": first, "last": last}


def create_console(settings: Settings) -> Console:
    """The console for ``settings``; the receiver mounts it at ``/console``."""
    return Console(settings)
