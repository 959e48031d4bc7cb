"""Named states are stored and shown as the same words as before they had names."""

from __future__ import annotations

import enum
import json
from functools import partial
from typing import Any

import pytest
import redis
from redis._parsers import Encoder
from rq.job import Job
from rq.registry import FailedJobRegistry

from tests.workers.conftest import Pusher, Workers, wait_for
from workers.states import BeginVerdict, Done, HandlerStatus, Status
from workers.store import BEGIN, FINISH, state_key

CRM = "tests.workers.sample_handlers:sync_contact"
BILLING = "tests.workers.sample_handlers:mark_paid"

#: Every state and the word hookbird wrote for it before states had names.
WORDS: list[tuple[enum.StrEnum, str]] = [
    (Status.QUEUED, "queued"),
    (Status.WAITING, "waiting"),
    (Status.RETRYING, "retrying"),
    (Status.SUCCEEDED, "succeeded"),
    (Status.DEAD, "dead"),
    (Status.RUNNING, "running"),
    (Status.EXPIRED, "expired"),
    (HandlerStatus.OK, "ok"),
    (HandlerStatus.SKIPPED, "skipped"),
    (HandlerStatus.FAILED, "failed"),
    (HandlerStatus.DEAD, "dead"),
    (HandlerStatus.INTERRUPTED, "interrupted"),
    (HandlerStatus.BATCHED, "batched"),
    (BeginVerdict.GO, "go"),
    (BeginVerdict.WAIT, "wait"),
    (BeginVerdict.EXPIRED, "expired"),
    (Done.HANDLED, "yes"),
    (Done.AGAIN, "no"),
    (Done.DEAD, "dead"),
    (Done.PARKED, "park"),
]


def test_every_state_is_listed_here() -> None:
    """A state added without its word in WORDS fails here, not in a Redis someone reads."""
    members = {m for cls in (Status, HandlerStatus, BeginVerdict, Done) for m in cls}
    assert members == {member for member, _ in WORDS}


@pytest.mark.parametrize(("member", "word"), WORDS, ids=[f"{m!r}" for m, _ in WORDS])
def test_a_state_formats_as_its_word_everywhere(member: enum.StrEnum, word: str) -> None:
    """str(), f-strings, %-format, padded columns, JSON and redis-py all give the plain word."""
    assert (str(member), f"{member}", "%s" % member) == (word, word, word)  # noqa: UP031
    assert f"{member:<12}|" == f"{word:<12}|"
    assert json.dumps({"status": member}) == json.dumps({"status": word})
    # redis-py does not annotate its Encoder
    encoder = Encoder("utf-8", "strict", False)  # type: ignore[no-untyped-call]
    assert encoder.encode(member) == word.encode()  # type: ignore[no-untyped-call]


def test_the_scripts_name_the_same_words() -> None:
    """begin.lua and finish.lua carry the words their callers send and read, and the key
    prefixes of hookbird/keys.py."""
    for word in ("'go'", "'wait'", "'expired'", "'succeeded'", "'dead'", "'hookbird:event:'"):
        assert word in BEGIN
    for word in ("'no'", "'dead'", "'park'", "'rq:job:'", "'hookbird:wake:'"):
        assert word in FINISH
    assert "{{" not in BEGIN + FINISH


def record(client: redis.Redis, event_id: str) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = client.hgetall(state_key(event_id))  # type: ignore[assignment]
    return found


def handler_status(client: redis.Redis, event_id: str, handler: str) -> Any:
    return json.loads(record(client, event_id).get(b"handlers", b"{}"))[handler]["status"]


def result_of(client: redis.Redis, event_id: str) -> Any:
    return Job.fetch(event_id, connection=client).return_value()


@pytest.mark.slow
def test_succeeded_and_expired_pushes_store_and_return_the_old_words(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A handled push: record "succeeded", handler "ok". Its job's result, and that of a push
    whose raw body expired, holds plain str (a pickled enum would name hookbird's module)."""
    gone = push(entity_id="901")
    redis_client.delete(f"hookbird:event:{gone}")
    handled = push(entity_id="902")
    workers.start()
    wait_for(lambda: result_of(redis_client, handled), message="the handled push's result")
    assert record(redis_client, handled)[b"status"] == b"succeeded"
    assert handler_status(redis_client, handled, CRM) == "ok"
    for event_id, word in ((handled, "succeeded"), (gone, "expired")):
        result = wait_for(partial(result_of, redis_client, event_id), message="a result")
        assert result == {"event_id": event_id, "status": word}
        assert type(result["status"]) is str


@pytest.mark.slow
def test_retrying_parked_and_dead_pushes_store_the_old_words(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A push failing transiently: "retrying", handler "failed"; the next push for its entity
    parks: "waiting"; a permanent error: "dead", handler "dead"."""
    redis_client.set("test:fail:crm", 1000)
    redis_client.set("test:dead:billing", 1)
    workers.start()
    retrying = push(entity_id="903")
    wait_for(lambda: record(redis_client, retrying).get(b"status") == b"retrying", message="retry")
    assert handler_status(redis_client, retrying, CRM) == "failed"
    parked = push(entity_id="903")
    wait_for(lambda: record(redis_client, parked).get(b"status") == b"waiting", message="parked")
    assert record(redis_client, parked)[b"parks"] == b"1"
    dead = push(action="sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")
    failed = FailedJobRegistry("hookbird", connection=redis_client)
    wait_for(lambda: dead in failed.get_job_ids(), message="the dead letter")
    assert record(redis_client, dead)[b"status"] == b"dead"
    assert handler_status(redis_client, dead, BILLING) == "dead"
