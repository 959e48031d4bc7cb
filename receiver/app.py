"""The receiver's Starlette app: ``create_app(settings)``.

Routes: ``POST /webhooks/moneybird`` (``receiver.endpoint``), ``GET /healthz`` (no
I/O), ``GET /readyz`` (200 when Redis answers within a second), ``GET /metrics``
(Prometheus text: this receiver's counts, and the whole pipeline's read from Redis,
``receiver.pipeline``), and the events console under ``/console/`` when it is on
(:func:`console_served`; the ``console`` package, imported only then); any other
path, a trailing slash included, is a 404, never a redirect. The Redis client is
opened in the lifespan and shared by all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable

import redis.asyncio
import redis.exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from hookbird.logs import get_logger
from hookbird.redis_url import async_client
from hookbird.settings import Settings, SettingsError
from receiver import pipeline
from receiver.credentials import CredentialsResolver
from receiver.endpoint import PushEndpoint
from receiver.enqueue import Enqueuer
from receiver.metrics import ReceiverMetrics
from receiver.resp import RedisLink

log = get_logger("hookbird.receiver")

PUSH_PATH = "/webhooks/moneybird"
READY_TIMEOUT = 1.0
SUMMARY_INTERVAL = 10.0


async def log_summaries(metrics: ReceiverMetrics, interval: float = SUMMARY_INTERVAL) -> None:
    """Every ``interval`` seconds with traffic, one line counting pushes by outcome."""
    last = dict(metrics.pushes)
    while True:
        await asyncio.sleep(interval)
        now = dict(metrics.pushes)
        delta = {outcome: now[outcome] - last[outcome] for outcome in now}
        if any(delta.values()):
            log.info("pushes received", seconds=interval, **{k: v for k, v in delta.items() if v})
        last = now


class ReceiverApp(Starlette):
    """Starlette, with ``POST /webhooks/moneybird`` sent straight to its endpoint.

    Every other request goes through Starlette's middleware and router as usual. The
    push route skips them because they cost about as much as the rest of a push: it
    is a plain ASGI callable that handles its own errors, and an exception escaping
    it still becomes a 500 from uvicorn.
    """

    push_endpoint: PushEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PUSH_PATH and scope["method"] == "POST":
            scope["app"] = self
            await self.push_endpoint(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def console_served(settings: Settings) -> bool:
    """Whether this receiver serves /console: ``open``, or ``auto`` with a password."""
    if settings.console == "open":
        return True
    return settings.console == "auto" and bool(settings.console_password)


def create_app(settings: Settings, *, redis_client: redis.asyncio.Redis | None = None) -> Starlette:
    """Build the receiver.

    ``redis_client`` overrides the client made from ``REDIS_URL`` for everything but
    the push path's script calls, which use a ``RedisLink`` of their own.
    """
    if not settings.redis_url:
        raise SettingsError(
            "REDIS_URL is not set: point it at your Redis (redis://host:6379/0), "
            "or run `hookbird dev`, which starts a private one."
        )
    metrics = ReceiverMetrics()
    push_endpoint = PushEndpoint(settings, metrics)
    retry_after = {"Retry-After": str(settings.retry_after)}
    clients: list[redis.asyncio.Redis] = []
    closers: list[Callable[[], None]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis_client or async_client(
            settings.redis_url or "",
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
        )
        clients.append(client)
        link = RedisLink(settings.redis_url or "", timeout=settings.redis_timeout)
        push_endpoint.enqueuer = Enqueuer(
            link,
            queue=settings.queue,
            dedup_ttl=settings.dedup_ttl,
            retention=settings.event_retention,
            min_replicas=settings.min_replicas,
            replica_timeout=settings.min_replicas_timeout,
        )
        push_endpoint.credentials = CredentialsResolver(client, settings)
        log.info(
            "receiver started",
            queue=settings.queue,
            single_webhook=settings.webhook_token is not None,
            max_body_bytes=settings.max_body_bytes,
        )
        summaries = asyncio.get_running_loop().create_task(log_summaries(metrics))
        # Everything allocated so far lives as long as the process: keep it out of the
        # garbage collector's full passes, which otherwise show up as latency spikes.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            summaries.cancel()
            await push_endpoint.body_reader.close()
            await link.aclose()
            for close in closers:
                close()
            if redis_client is None:
                await client.aclose()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with asyncio.timeout(min(settings.redis_timeout, READY_TIMEOUT)):
                await clients[-1].ping()
        except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
            body = {"status": "unavailable", "redis": type(exc).__name__}
            return JSONResponse(body, status_code=503, headers=retry_after)
        return JSONResponse({"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        timeout = min(settings.redis_timeout, READY_TIMEOUT)
        shared = await pipeline.exposition(clients[-1], settings, timeout)
        return Response(generate_latest(metrics.registry) + shared, media_type=CONTENT_TYPE_LATEST)

    routes: list[BaseRoute] = [
        Route(PUSH_PATH, push_endpoint, methods=["POST"]),  # for 405s; POST takes the fast path
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    if console_served(settings):
        # An operator's page, not part of the push path: loaded only when it is served.
        from console.app import create_console

        console = create_console(settings)
        closers.append(console.close)
        routes += [Route("/console", console.redirect_home), Mount("/console", console)]
    app = ReceiverApp(routes=routes, lifespan=lifespan)
    # No 307 to the path with(out) a trailing slash: Starlette builds its Location from
    # the Host header. /webhooks/moneybird/ is a 404 like any unknown path.
    app.router.redirect_slashes = False
    app.push_endpoint = push_endpoint
    return app


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory receiver.app:create_app_from_env``."""
    from hookbird.logs import configure_logging

    settings = Settings.from_env()
    settings.refuse_placeholders()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    return create_app(settings)
