"""``POST /webhooks/moneybird``: one push from raw bytes to a 200 that Redis backs.

In order: the capped body read (413, 408, both closing the connection), parsing (400), Moneybird's
``test_webhook`` check (200 "test", nothing stored), authentication (401 and the
word "unauthorized", nothing more), then the one atomic Redis step that dedups,
stores and enqueues (200 "accepted" or "duplicate"). Whenever Redis cannot
confirm, the answer is 503 with ``Retry-After`` so Moneybird tries again; so it is
when a webhook's stored signing secrets cannot be decrypted (``HOOKBIRD_SECRET_KEY``
unset or wrong): such a push is neither accepted unverified nor refused as forged.
A Redis outage is logged once when the first push gets its 503 and once when the next
push is stored, with its duration; the 503s between are counted, not logged one by one.

This is the hot path. :meth:`PushEndpoint.answer` does the work once the body is
read, and ``receiver.protocol`` calls it straight from uvicorn's parser for a push
that arrives whole, the common case, without an ASGI request cycle. The endpoint
is also a plain ASGI callable (not a Starlette request handler: Request and
Response objects would cost more than the rest of a push) for every other push:
a body in several reads, chunked, ``Expect: 100-continue``, over the cap.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import redis.exceptions
from starlette.types import Receive, Scope, Send

from hookbird import keys
from hookbird.crypto import SecretKeyError
from hookbird.labels import label
from hookbird.logs import get_logger
from hookbird.settings import Settings
from hookbird.stored import pack_push, without_token
from receiver.body import BodyError, BodyReader, declared_length
from receiver.credentials import CredentialsResolver
from receiver.enqueue import Enqueuer, NewPush, QueueUnavailable, timestamps
from receiver.metrics import ReceiverMetrics
from receiver.payload import MalformedPush, Push, parse_push
from receiver.verify import Signature, VerificationFailure, authenticate

log = get_logger("hookbird.receiver")

_JSON = [(b"content-type", b"application/json")]
#: The request headers a push needs (``receiver.protocol`` picks them in its own pass).
WANTED = {
    b"connection",
    b"content-length",
    b"idempotency-key",
    b"moneybird-signature",
    b"upgrade",
    b"user-agent",
}
_BODY_OUTCOMES = {413: "too_large", 408: "timeout"}
#: On an answer sent before the whole request was read: the rest is not read as a
#: next request (uvicorn would otherwise keep the connection), see ``receiver.edge``.
_CLOSE = ((b"connection", b"close"),)


@functools.lru_cache(maxsize=4096)
def is_ip_address(text: str) -> bool:
    """Whether a client address (from ``X-Forwarded-For`` perhaps) is an IP address."""
    if len(text) > 64:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


#: Redis keeps a hash compactly (a listpack) while every value is at most this long
#: (``hash-max-listpack-value``): a job hash within it saves Redis about a tenth of
#: its work per push and 900 bytes per queued job, against one past it.
DESCRIPTION_BYTES = 64

#: Moneybird has a few hundred event names: an action's label is made once, not per push.
_action_label = functools.lru_cache(maxsize=1024)(label)


def describe(push: Push) -> str:
    """How a queued push reads on the queue dashboard: its action and entity id.

    Cut to :data:`DESCRIPTION_BYTES`; the worker writes the whole story (entity type,
    administration, handlers) when it has handled the push.
    """
    action = _action_label(push.action)
    text = f"{action} {push.entity_id}" if push.entity_id else action
    return text[:DESCRIPTION_BYTES]  # ASCII: a label, a space and digits


class Reply(NamedTuple):
    """The answer to a push: always a JSON body, sometimes with extra headers."""

    status: int
    body: bytes
    headers: Sequence[tuple[bytes, bytes]] = ()

    def head_fields(self) -> list[tuple[bytes, bytes]]:
        """Its header fields as ASGI lists them (uvicorn adds ``date``)."""
        return [*_JSON, (b"content-length", b"%d" % len(self.body)), *self.headers]


def wanted_headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, str]:
    """The request headers a push needs, by lower-case name (as ASGI and uvicorn give them)."""
    return {name: value.decode("latin-1") for name, value in raw if name in WANTED}


async def respond(send: Send, reply: Reply) -> None:
    await send(
        {"type": "http.response.start", "status": reply.status, "headers": reply.head_fields()}
    )
    await send({"type": "http.response.body", "body": reply.body})


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
        #: When the first push of a Redis outage got its 503 (monotonic); None: no outage.
        self.redis_down_since: float | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The push route as an ASGI app: for what ``receiver.protocol`` does not answer
        itself (a body in several reads, chunked, ``Expect: 100-continue``, over the cap)."""
        started = time.perf_counter()
        received_ns = time.time_ns()
        headers = wanted_headers(scope["headers"])
        try:
            if b"upgrade" in headers and "upgrade" in headers.get(b"connection", "").lower():
                # receiver.edge refuses these before the body; this holds under uvicorn's
                # own protocol too, whose parser would read the body as a next request.
                raise BodyError("protocol upgrade not supported: send plain HTTP/1.1")
            declared_length(headers.get(b"content-length"), self.settings.max_body_bytes)
            body = await self.body_reader.read(receive)
        except BodyError as exc:
            self.metrics.pushes[_BODY_OUTCOMES.get(exc.status_code, "bad_request")] += 1
            log.warning("push refused", status=exc.status_code, reason=exc.reason)
            return await respond(send, Reply(exc.status_code, error_body(exc.reason), _CLOSE))
        client = scope.get("client")
        remote_addr = client[0] if client else ""
        if remote_addr and not is_ip_address(remote_addr):
            # uvicorn's proxy-headers middleware took it from X-Forwarded-For as it came;
            # receiver.edge drops such a header before, this is for uvicorn's own protocol.
            log.debug("X-Forwarded-For ignored: not an IP address")
            remote_addr = ""
        await respond(send, await self.answer(body, headers, remote_addr, received_ns, started))

    async def answer(
        self,
        body: bytes,
        headers: dict[bytes, str],
        remote_addr: str,
        received_ns: int,
        started: float,
    ) -> Reply:
        """A push whose whole body has been read, from parsing to the reply.

        ``headers`` are the request's :func:`wanted_headers`; ``received_ns`` is when
        it arrived (``time.time_ns()``) and ``started`` the same on ``time.perf_counter``.
        """
        settings, counts = self.settings, self.metrics.pushes
        try:
            push = parse_push(body)
        except MalformedPush as exc:
            counts["bad_request"] += 1
            log.warning("push refused", status=400, reason=exc.reason, bytes=len(body))
            return Reply(400, error_body(exc.reason))

        if push.is_test:
            counts["test"] += 1
            log.info("test_webhook received", administration_id=push.administration_id)
            return Reply(200, b'{"status":"test"}')

        assert self.credentials is not None, "set in the app's lifespan"
        assert self.enqueuer is not None, "set in the app's lifespan"
        signature = headers.get(b"moneybird-signature")
        try:
            verified = authenticate(
                body=body,
                administration_id=push.administration_id,
                presented_token=push.webhook_token,
                signature_header=signature,
                credentials=await self.credentials.resolve(push.webhook_id),
                now=received_ns / 1e9,
                tolerance=settings.signature_tolerance,
                require_signature=settings.require_signature,
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
            return Reply(401, b'{"status":"error","error":"unauthorized"}')
        except (redis.exceptions.RedisError, OSError) as exc:
            return self.unavailable(exc)
        except SecretKeyError as exc:  # the message names the fix and holds no secret
            counts["unavailable"] += 1
            log.error("push not verified", status=503, webhook_id=push.webhook_id, error=str(exc))
            return Reply(503, error_body("unavailable, retry later"), self._retry_after)

        enqueuer = self.enqueuer
        try:
            outcome = await enqueuer.submit(
                self.new_push(
                    push,
                    body,
                    headers,
                    remote_addr,
                    received_ns,
                    verified,
                    legacy=received_ns < enqueuer.legacy_until_ns,
                )
            )
        except QueueUnavailable as exc:
            return self.unavailable(exc)
        if self.redis_down_since is not None:
            self.redis_back()

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
        return Reply(
            200, b'{"status":"%s","event_id":"%s"}' % (status.encode(), outcome.event_id.encode())
        )

    @staticmethod
    def new_push(
        push: Push,
        body: bytes,
        headers: dict[bytes, str],
        remote_addr: str,
        received_ns: int,
        signature: Signature | None = None,
        *,
        legacy: bool = False,
    ) -> NewPush:
        """The push as the enqueue script takes it. ``signature`` is the verified one:
        the push is then also a duplicate of any push with the same ``t`` and body.
        ``legacy``: also a duplicate of an unscoped ``Idempotency-Key`` that an older
        receiver stored (``Enqueuer.legacy_until_ns``)."""
        idempotency_key = headers.get(b"idempotency-key")
        event_id = keys.new_event_id(received_ns / 1e9)
        scope = keys.idempotency_scope(push.webhook_id, push.administration_id)
        dedup_key = keys.dedup_key(idempotency_key, body, scope)
        received_at, job_timestamp = timestamps(received_ns)
        header = {  # the fields of hookbird.stored.HEADER_FIELDS
            "idempotency_key": idempotency_key or "",
            # only t: the v1 values could only be checked against the body as received
            "signature": f"t={signature.timestamp}" if signature else "",
            "user_agent": headers.get(b"user-agent", ""),
            "remote_addr": remote_addr,
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
            keys.signature_dedup_key(signature.timestamp, body) if signature else "",
            keys.legacy_dedup_key(idempotency_key) if legacy and idempotency_key else "",
            received_at,
            job_timestamp,
            describe(push),
            pack_push(header, without_token(body, push.webhook_token, push.data)),
        )

    def unavailable(self, exc: BaseException) -> Reply:
        self.metrics.pushes["unavailable"] += 1
        self.metrics.redis_errors += 1
        if self.redis_down_since is None:
            self.redis_down_since = time.monotonic()
            log.error(
                "Redis unreachable: pushes answered 503 until it is back",
                status=503,
                error=str(exc),
            )
        return Reply(503, error_body("queue unavailable, retry later"), self._retry_after)

    def redis_back(self) -> None:
        """A push was stored after an outage: say so once, with how long it lasted."""
        assert self.redis_down_since is not None
        seconds = time.monotonic() - self.redis_down_since
        self.redis_down_since = None
        log.info("Redis reachable again", seconds=round(seconds, 1))
