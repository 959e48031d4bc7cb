"""The receiver's Starlette app: ``create_app(settings)``.

``POST /webhooks/moneybird`` takes a push through, in order: the capped body read
(413/408), parsing (400), Moneybird's ``test_webhook`` check (200 "test"),
authentication (401), one atomic Redis step that dedups, stores and enqueues
(200 "accepted" or "duplicate"), and 503 with ``Retry-After`` whenever Redis could
not confirm. Only Redis's yes earns a 200.

``GET /healthz`` does no I/O; ``GET /readyz`` pings Redis; ``GET /metrics`` is
Prometheus text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio
import redis.exceptions
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hookbird import keys
from hookbird.logs import get_logger
from hookbird.settings import Settings, SettingsError
from hookbird.subscriptions import Subscription, token_digest
from receiver.body import BodyError, declared_length, read_body
from receiver.enqueue import Enqueuer, NewPush, QueueUnavailable
from receiver.metrics import ReceiverMetrics
from receiver.payload import MalformedPush, Push, parse_push
from receiver.verify import Credentials, VerificationFailure, authenticate

log = get_logger("hookbird.receiver")

JSON = "application/json"
MAX_CACHED_SUBSCRIPTIONS = 10_000
UNAUTHORIZED = b'{"status":"error","error":"unauthorized"}'


def _json(
    status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    return Response(content, status_code=status_code, media_type=JSON, headers=headers)


def _error(status_code: int, reason: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status_code, {"status": "error", "error": reason}, headers)


class CredentialsResolver:
    """Which credentials a push must match: its subscription, else the environment's token.

    Subscriptions are cached in the process for ``ttl`` seconds (found or not), so a
    push costs no extra Redis round trip in the common case.
    """

    def __init__(self, client: redis.asyncio.Redis, settings: Settings) -> None:
        self.redis = client
        self.ttl = settings.subscription_cache_ttl
        self.fallback = (
            Credentials(
                token_sha256=token_digest(settings.webhook_token),
                secrets=settings.webhook_secrets,
            )
            if settings.webhook_token
            else None
        )
        self._cache: dict[str, tuple[float, Credentials | None]] = {}

    async def resolve(self, webhook_id: str | None) -> Credentials | None:
        if webhook_id is None:
            return self.fallback
        now = time.monotonic()
        cached = self._cache.get(webhook_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        data = await self.redis.hgetall(keys.webhook_key(webhook_id))
        found: Credentials | None = self.fallback
        if data:
            subscription = Subscription.from_hash(data)
            found = Credentials(
                token_sha256=subscription.token_sha256,
                secrets=subscription.secrets,
                administration_id=subscription.administration_id,
                enabled=subscription.enabled,
                source="subscription",
            )
        if len(self._cache) >= MAX_CACHED_SUBSCRIPTIONS:
            self._cache.clear()
        self._cache[webhook_id] = (now + self.ttl, found)
        return found


def _describe(push: Push) -> str:
    parts = [
        push.action,
        push.entity_type or "-",
        push.entity_id or "-",
        f"adm {push.administration_id}",
    ]
    return " ".join(parts)


def create_app(settings: Settings, *, redis_client: redis.asyncio.Redis | None = None) -> Starlette:
    """Build the receiver. ``redis_client`` overrides the one made from ``REDIS_URL``."""
    if redis_client is None and not settings.redis_url:
        raise SettingsError(
            "REDIS_URL is not set: point it at your Redis (redis://host:6379/0), "
            "or run `hookbird dev`, which starts a private one."
        )
    metrics = ReceiverMetrics()
    outcome_counter = {
        name: metrics.pushes.labels(name)
        for name in (
            "accepted",
            "duplicate",
            "test",
            "bad_request",
            "unauthorized",
            "too_large",
            "timeout",
            "unavailable",
        )
    }
    retry_after = {"Retry-After": str(settings.retry_after)}
    state: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = redis_client or redis.asyncio.Redis.from_url(
            settings.redis_url or "",
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            retry_on_timeout=False,
        )
        state["redis"] = client
        state["enqueuer"] = Enqueuer(
            client,
            queue=settings.queue,
            dedup_ttl=settings.dedup_ttl,
            retention=settings.event_retention,
            timeout=settings.redis_timeout,
        )
        state["credentials"] = CredentialsResolver(client, settings)
        log.info(
            "receiver started",
            queue=settings.queue,
            single_webhook=settings.webhook_token is not None,
            max_body_bytes=settings.max_body_bytes,
        )
        try:
            yield
        finally:
            if redis_client is None:
                await client.aclose()

    async def receive_push(request: Request) -> Response:
        started = time.perf_counter()
        received_at = time.time()
        try:
            declared_length(request.headers.get("content-length"), settings.max_body_bytes)
            body = await read_body(
                request.receive, limit=settings.max_body_bytes, timeout=settings.body_timeout
            )
        except BodyError as exc:
            outcome = {413: "too_large", 408: "timeout"}.get(exc.status_code, "bad_request")
            outcome_counter[outcome].inc()
            log.warning("push refused", status=exc.status_code, reason=exc.reason)
            return _error(exc.status_code, exc.reason)

        try:
            push = parse_push(body)
        except MalformedPush as exc:
            outcome_counter["bad_request"].inc()
            log.warning("push refused", status=400, reason=exc.reason, bytes=len(body))
            return _error(400, exc.reason)

        if push.is_test:
            outcome_counter["test"].inc()
            log.info("test_webhook received", administration_id=push.administration_id)
            return _json(200, {"status": "test"})

        headers = request.headers
        try:
            credentials = await state["credentials"].resolve(push.webhook_id)
            authenticate(
                body=body,
                administration_id=push.administration_id,
                presented_token=push.webhook_token,
                signature_header=headers.get("moneybird-signature"),
                credentials=credentials,
                now=received_at,
                tolerance=settings.signature_tolerance,
            )
        except VerificationFailure as exc:
            outcome_counter["unauthorized"].inc()
            log.warning(
                "push refused",
                status=401,
                reason=exc.reason,
                action=push.action,
                administration_id=push.administration_id,
                webhook_id=push.webhook_id,
            )
            return Response(UNAUTHORIZED, status_code=401, media_type=JSON)
        except (redis.exceptions.RedisError, OSError) as exc:
            return unavailable(exc)

        idempotency_key = headers.get("idempotency-key")
        event_id = keys.new_event_id(received_at)
        dedup_key = keys.dedup_key(idempotency_key, body)
        client = request.client
        new = NewPush(
            dedup_key=dedup_key,
            event_id=event_id,
            received_at=received_at,
            description=_describe(push),
            meta={
                "event_id": event_id,
                "action": push.action,
                "administration_id": push.administration_id,
                "entity_type": push.entity_type or "",
                "entity_id": push.entity_id or "",
            },
            fields={
                "body": body,
                "idempotency_key": idempotency_key or "",
                "signature": headers.get("moneybird-signature", ""),
                "user_agent": headers.get("user-agent", ""),
                "remote_addr": client.host if client else "",
                "received_at": repr(received_at),
                "action": push.action,
                "administration_id": push.administration_id,
                "webhook_id": push.webhook_id or "",
                "entity_type": push.entity_type or "",
                "entity_id": push.entity_id or "",
                "dedup_key": dedup_key,
            },
        )
        try:
            outcome = await state["enqueuer"].submit(new)
        except QueueUnavailable as exc:
            return unavailable(exc)

        status = "accepted" if outcome.accepted else "duplicate"
        outcome_counter[status].inc()
        metrics.ack_seconds.observe(time.perf_counter() - started)
        log.info(
            "push " + status,
            event_id=outcome.event_id,
            action=push.action,
            administration_id=push.administration_id,
            entity_type=push.entity_type,
            entity_id=push.entity_id,
        )
        content = b'{"status":"%s","event_id":"%s"}' % (status.encode(), outcome.event_id.encode())
        return Response(content, media_type=JSON)

    def unavailable(exc: BaseException) -> Response:
        outcome_counter["unavailable"].inc()
        metrics.redis_errors.inc()
        log.error("push not stored: Redis unavailable", status=503, error=str(exc))
        return _error(503, "queue unavailable, retry later", retry_after)

    async def healthz(request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            async with asyncio.timeout(min(settings.redis_timeout, 1.0)):
                await state["redis"].ping()
        except (TimeoutError, redis.exceptions.RedisError, OSError) as exc:
            return _json(503, {"status": "unavailable", "redis": str(exc)}, retry_after)
        return _json(200, {"status": "ready"})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/webhooks/moneybird", receive_push, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def create_app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory receiver.app:create_app_from_env``."""
    from hookbird.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets())
    return create_app(settings)
