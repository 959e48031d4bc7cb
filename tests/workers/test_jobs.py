"""Which entity a job's push is about: from the stored push, or from an older job's meta."""

from __future__ import annotations

import redis
from redis.typing import EncodableT, FieldT
from rq.job import Job

from hookbird import keys
from hookbird.stored import pack_push
from workers.jobs import entity_of

HEADER = {"administration_id": "123", "entity_type": "Contact", "entity_id": "456"}


def job(connection: redis.Redis, event_id: str, meta: dict[str, str] | None = None) -> Job:
    return Job.create("workers.jobs.process_event", connection=connection, id=event_id, meta=meta)


def test_read_from_the_stored_push_when_the_job_has_no_meta(redis_client: redis.Redis) -> None:
    redis_client.set(keys.event_key("ev1"), pack_push(HEADER, b"{}"))
    assert entity_of(redis_client, job(redis_client, "ev1")) == ("123", "Contact", "456")


def test_a_job_from_an_older_receiver_names_it_in_its_meta(redis_client: redis.Redis) -> None:
    """Nothing is read: the stored push may even be gone."""
    meta = {"administration_id": "9", "entity_type": "SalesInvoice", "entity_id": "8"}
    assert entity_of(redis_client, job(redis_client, "ev2", meta)) == ("9", "SalesInvoice", "8")


def test_a_push_stored_as_a_hash_by_an_older_receiver(redis_client: redis.Redis) -> None:
    fields: dict[FieldT, EncodableT] = {name: value for name, value in HEADER.items()}
    fields["body"] = b"{}"
    redis_client.hset(keys.event_key("ev3"), mapping=fields)
    assert entity_of(redis_client, job(redis_client, "ev3")) == ("123", "Contact", "456")


def test_no_entity_when_the_push_names_none_or_is_gone(redis_client: redis.Redis) -> None:
    redis_client.set(keys.event_key("ev4"), pack_push({"administration_id": "123"}, b"{}"))
    assert entity_of(redis_client, job(redis_client, "ev4")) is None
    assert entity_of(redis_client, job(redis_client, "gone")) is None
