"""``POST /webhooks/moneybird``: one push from raw bytes to a 200 that Redis backs.

In order: the capped body read (413, 408), parsing (400), Moneybird's
``test_webhook`` check (200 "test", nothing stored), authentication (401 and the
word "unauthorized", nothing more), then the one atomic Redis step that dedups,
stores and enqueues (200 "accepted" or "duplicate"). Whenever Redis cannot
confirm, the answer is 503 with ``Retry-After`` so Moneybird tries again; so it is
when a webhook's stored signing secrets cannot be decrypted (``HOOKBIRD_SECRET_KEY``
unset or wrong): such a push is neither accepted unverified nor refused as forged.

A plain ASGI callable rather than a Starlette request handler: this is the hot
path, and building Request and Response objects costs more than the rest of
the work a push needs here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.exceptions
from starlette.types import Receive, Scope, Send

from hookbird import keys
from hookbird.crypto import SecretKeyError
from hookbird.logs import get_logger
from hookbird.settings import Settings
from hookbird.stored import pack_push
from receiver.body import BodyError, BodyReader, declared_length
from receiver.credentials import CredentialsResolver
from receiver.enqueue import Enqueuer, NewPush, QueueUnavailable, timestamps
from receiver.metrics import ReceiverMetrics
from receiver.payload import MalformedPush, Push, parse_push
from receiver.verify import VerificationFailure, authenticate

log = get_logger("hookbird.receiver")

_JSON = [(b"content-type", b"application/json")]
_WANTED = {b"content-length", b"idempotency-key", b"moneybird-signature", b"user-agent"}
_BODY_OUTCOMES = {413: "too_large", 408: "timeout"}


#: Redis keeps a hash compactly (a listpack) while every value is at most this long
#: (``hash-max-listpack-value``): a job hash within it saves Redis about a tenth of
#: its work per push and 900 bytes per queued job, against one past it.
DESCRIPTION_BYTES = 64


def describe(push: Push) -> str:
    """How a queued push reads on the queue dashboard: its action and entity id.

    Cut to :data:`DESCRIPTION_BYTES`; the worker writes the whole story (entity type,
    administration, handlers) when it has handled the push.
    """
    text = f"{push.action} {push.entity_id}" if push.entity_id else push.action
    if len(text) <= DESCRIPTION_BYTES and text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape")[:DESCRIPTION_BYTES].decode("utf-8", "ignore")


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON, (b"content-length", b"%d" % len(body)), *(headers or ())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_body(reason: str) -> bytes:
    return json.dumps({"status": "error", "error": reason}, separators=(",", ":")).encode()


class PushEndpoint:
    """The push route's ASGI app. ``enqueuer`` and ``credentials`` are set at start-up."""

    def __init__(self, settings: Settings, metrics: ReceiverMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.enqueuer: Enqueuer | None = None
        self.credentials: CredentialsResolver | None = None
        self.body_reader = BodyReader(limit=settings.max_body_bytes, timeout=settings.body_timeout)
        self._retry_after = [(b"retry-after", str(settings.retry_after).encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        received_ns = time.time_ns()
        received_at = received_ns / 1e9
        settings, counts = self.settings, self.metrics.pushes
        headers = {
            name: value.decode("latin-1") for name, value in scope["headers"] if name in _WANTED
        }
        try:
            declared_length(headers.get(b"content-length"), settings.max_body_bytes)
            body = await self.body_reader.read(receive)
        except BodyError as exc:
            counts[_BODY_OUTCOMES.get(exc.status_code, "bad_request")] += 1
            log.warning("push refused", status=exc.status_code, reason=exc.reason)
            return await respond(send, exc.status_code, error_body(exc.reason))

        try:
            push = parse_push(body)
        except MalformedPush as exc:
            counts["bad_request"] += 1
            log.warning("push refused", status=400, reason=exc.reason, bytes=len(body))
            return await respond(send, 400, error_body(exc.reason))

        if push.is_test:
            counts["test"] += 1
            log.info("test_webhook received", administration_id=push.administration_id)
            return await respond(send, 200, b'{"status":"test"}')

        assert self.credentials is not None, "set in the app's lifespan"
        assert self.enqueuer is not None, "set in the app's lifespan"
        signature = headers.get(b"moneybird-signature")
        try:
            authenticate(
                body=body,
                administration_id=push.administration_id,
                presented_token=push.webhook_token,
                signature_header=signature,
                credentials=await self.credentials.resolve(push.webhook_id),
                now=received_at,
                tolerance=settings.signature_tolerance,
            )
        except VerificationFailure as exc:
            counts["unauthorized"] += 1
            log.warning(
                "push refused",
                status=401,
                reason=exc.reason,
                action=push.action,
                administration_id=push.administration_id,
                webhook_id=push.webhook_id,
            )
            return await respond(send, 401, b'{"status":"error","error":"unauthorized"}')
        except (redis.exceptions.RedisError, OSError) as exc:
            return await self.unavailable(send, exc)
        except SecretKeyError as exc:  # the message names the fix and holds no secret
            counts["unavailable"] += 1
            log.error("push not verified", status=503, webhook_id=push.webhook_id, error=str(exc))
            unavailable = error_body("unavailable, retry later")
            return await respond(send, 503, unavailable, self._retry_after)

        try:
            outcome = await self.enqueuer.submit(
                self.new_push(push, body, headers, scope, received_ns)
            )
        except QueueUnavailable as exc:
            return await self.unavailable(send, exc)

        status = "accepted" if outcome.accepted else "duplicate"
        counts[status] += 1
        self.metrics.observe_ack(time.perf_counter() - started)
        if settings.log_each_push:
            log.info(
                "push " + status,
                event_id=outcome.event_id,
                action=push.action,
                administration_id=push.administration_id,
                entity_type=push.entity_type,
                entity_id=push.entity_id,
            )
        await respond(
            send,
            200,
            b'{"status":"%s","event_id":"%s"}' % (status.encode(), outcome.event_id.encode()),
        )

    @staticmethod
    def new_push(
        push: Push, body: bytes, headers: dict[bytes, str], scope: Scope, received_ns: int
    ) -> NewPush:
        idempotency_key = headers.get(b"idempotency-key")
        event_id = keys.new_event_id(received_ns / 1e9)
        dedup_key = keys.dedup_key(idempotency_key, body)
        received_at, job_timestamp = timestamps(received_ns)
        client: Any = scope.get("client")
        header = {  # the fields of hookbird.stored.HEADER_FIELDS
            "idempotency_key": idempotency_key or "",
            "signature": headers.get(b"moneybird-signature", ""),
            "user_agent": headers.get(b"user-agent", ""),
            "remote_addr": client[0] if client else "",
            "received_at": received_at,
            "action": push.action,
            "administration_id": push.administration_id,
            "webhook_id": push.webhook_id or "",
            "entity_type": push.entity_type or "",
            "entity_id": push.entity_id or "",
            "dedup_key": dedup_key,
        }
        return NewPush(
            event_id,
            dedup_key,
            received_at,
            job_timestamp,
            describe(push),
            pack_push(header, body),
        )

    async def unavailable(self, send: Send, exc: BaseException) -> None:
        self.metrics.pushes["unavailable"] += 1
        self.metrics.redis_errors += 1
        log.error("push not stored: Redis unavailable", status=503, error=str(exc))
        await respond(send, 503, error_body("queue unavailable, retry later"), self._retry_after)
