"""Redis key names and identifiers shared by the receiver, the workers and the CLI.

Every key hookbird writes starts with ``hookbird:`` except RQ's own (``rq:``),
which the receiver writes in RQ's format so RQ workers and rq-dashboard see
ordinary jobs.

=====================================  ==========================================
``hookbird:dedup:<sha256>``            string: event id; TTL ``HOOKBIRD_DEDUP_TTL``
``hookbird:event:<event_id>``          string: the raw push (``hookbird.stored``); TTL retention
``hookbird:events``                    sorted set event_id → received-at; trimmed to retention
``hookbird:dedup-scoped-since``        string: epoch s since receivers scope dedup keys (0: always)
``hookbird:webhook:<webhook_id>``      hash: a subscription (see ``hookbird.subscriptions``)
``hookbird:webhooks``                  set of subscribed webhook ids
``rq:job:<event_id>``                  hash: the RQ job that handles the push
``rq:queue:<HOOKBIRD_QUEUE>``          list: RQ's queue
=====================================  ==========================================
"""

from __future__ import annotations

import hashlib
import random
import time

PREFIX = "hookbird:"
EVENTS_INDEX = PREFIX + "events"
WEBHOOKS_INDEX = PREFIX + "webhooks"
SCOPED_SINCE = PREFIX + "dedup-scoped-since"
RQ_QUEUES = "rq:queues"


def idempotency_scope(webhook_id: str | None, administration_id: str) -> str:
    """Whose ``Idempotency-Key`` namespace a push is in: its webhook's, else (a push
    checked against ``HOOKBIRD_WEBHOOK_TOKEN`` without a ``webhook_id``) its
    administration's. Two webhooks that happen to send the same key never collide."""
    return "w" + webhook_id if webhook_id else "a" + administration_id


def dedup_key(idempotency_key: str | None, body: bytes, scope: str) -> str:
    """The dedup key of a push: its ``Idempotency-Key`` within ``scope``
    (:func:`idempotency_scope`), else a hash of the raw body.

    Both are hashed so a hostile header cannot make a huge Redis key, and each
    source has its own prefix so none can collide with another.
    """
    if idempotency_key:
        key = idempotency_key.encode("utf-8", "surrogateescape")
        digest = hashlib.sha256(b"i:" + scope.encode() + b":" + key)
    else:
        digest = hashlib.sha256(b"b:" + body)
    return f"{PREFIX}dedup:{digest.hexdigest()}"


def signature_dedup_key(timestamp: int, body: bytes) -> str:
    """The second dedup key of a signed push: what its signature covers, ``t`` and the body.

    The ``Idempotency-Key`` header is not signed: a captured push sent again with a
    new key must still be a duplicate. Everything that makes a signature valid is in
    this key, so a replay within the signature tolerance always finds it; Moneybird's
    own retries are signed afresh and are recognised by their ``Idempotency-Key``.
    """
    return f"{PREFIX}dedup:{hashlib.sha256(b's:%d.' % timestamp + body).hexdigest()}"


def legacy_dedup_key(idempotency_key: str) -> str:
    """The dedup key hookbird wrote for an ``Idempotency-Key`` before keys were scoped by
    webhook. The receiver only reads it (``enqueue.lua``), so a push accepted by an
    older receiver is still a duplicate after an upgrade; no key of this form is
    written any more, and one ``HOOKBIRD_DEDUP_TTL`` after the upgrade none is left.
    So receivers read it only then (``receiver.enqueue.legacy_window``): on a Redis
    that older receivers never wrote to, never.
    """
    digest = hashlib.sha256(b"k:" + idempotency_key.encode("utf-8", "surrogateescape"))
    return f"{PREFIX}dedup:{digest.hexdigest()}"


def event_key(event_id: str) -> str:
    return f"{PREFIX}event:{event_id}"


def webhook_key(webhook_id: str) -> str:
    return f"{PREFIX}webhook:{webhook_id}"


def rq_job_key(job_id: str) -> str:
    return f"rq:job:{job_id}"


def rq_queue_key(queue: str) -> str:
    return f"rq:queue:{queue}"


def new_event_id(now: float | None = None) -> str:
    """A new event id: 12 hex digits of milliseconds, then 16 random: sortable by receipt.

    Ids need to be unique, not secret: ``random`` is reseeded from the OS in every
    process (and after fork) and costs no system call per id.
    """
    millis = int((time.time() if now is None else now) * 1000)
    return f"{millis:012x}{random.getrandbits(64):016x}"
