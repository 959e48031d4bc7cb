"""Pushes through the real receiver into real worker processes: outcomes, retries, dead letter."""

from __future__ import annotations

import json

import pytest
import redis
from redis.typing import EncodableT, FieldT
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from hookbird.settings import Settings
from hookbird.stored import pack_push, unpack_push
from tests.support import as_bytes
from tests.workers.conftest import Pusher, Workers, calls, run_cli, wait_for
from workers import admin, recovery
from workers.store import state_key
from workers.worker import HookbirdForkWorker, HookbirdMixin, HookbirdSimpleWorker

pytestmark = pytest.mark.slow

CRM = "tests.workers.sample_handlers:sync_contact"
LATEST = "tests.workers.sample_handlers:latest_contact"
BILLING = "tests.workers.sample_handlers:mark_paid"


def state(client: redis.Redis, event_id: str) -> dict[str, str]:
    fields = client.hgetall(state_key(event_id))
    return {as_bytes(k).decode(): as_bytes(v).decode() for k, v in fields.items()}


def status_is(client: redis.Redis, event_id: str, wanted: str) -> bool:
    return state(client, event_id).get("status") == wanted


def test_a_push_reaches_its_handler_once_and_the_job_says_where_it_went(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """One push → the matching handler runs once; the job's description names the handler."""
    workers.start()
    event_id = push(entity_id="456")
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), message="success")
    (call,) = calls(redis_client)
    assert call["event_id"] == event_id
    assert call["attempt"] == 1
    job = Job.fetch(event_id, connection=redis_client)
    assert job.get_status() == "finished"
    assert job.description == f"contact_created Contact 456 adm 123 → {CRM}"
    assert job.meta["action"] == "contact_created"
    assert job.meta["entity_id"] == "456"
    outcomes = json.loads(state(redis_client, event_id)["handlers"])
    assert outcomes[CRM]["status"] == "ok"


def test_a_retry_runs_only_the_handler_that_failed(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Two handlers, one fails transiently: the retry re-runs it alone, with attempt 2."""
    redis_client.set("test:fail:crm", 1)
    workers.start()
    event_id = push(action="contact_changed")
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), message="success")
    done = calls(redis_client)
    assert sorted(c["handler"] for c in done) == ["crm", "latest"]
    crm = next(c for c in done if c["handler"] == "crm")
    assert crm["attempt"] == 2
    started = [json.loads(s)["handler"] for s in redis_client.lrange("test:started", 0, -1)]
    assert sorted(started) == ["crm", "crm", "latest"]
    outcomes = json.loads(state(redis_client, event_id)["handlers"])
    assert outcomes[CRM]["attempts"] == 2
    assert outcomes[LATEST]["attempts"] == 1


def test_a_push_waiting_for_its_retry_names_only_the_handlers_still_to_run(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Two handlers, one failing: the waiting job names that one alone; once handled, both."""
    redis_client.set("test:fail:crm", 100)
    workers.start()
    event_id = push(action="contact_changed")
    wait_for(lambda: status_is(redis_client, event_id, "retrying"), message="a retry")
    job = Job.fetch(event_id, connection=redis_client)
    assert job.description == f"contact_changed Contact 456 adm 123 → {CRM}"
    redis_client.delete("test:fail:crm")
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), timeout=30, message="success")
    job = Job.fetch(event_id, connection=redis_client)
    assert job.description == f"contact_changed Contact 456 adm 123 → {CRM}, {LATEST}"


def log_lines(workers: Workers, event: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in workers.output().splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("event") == event]


def test_the_log_says_what_becomes_of_each_failed_attempt(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Out of attempts: the first failure is logged as retried, the last as dead, and RQ's
    line about the retry carries no meaningless count of retries left."""
    redis_client.set("test:fail:crm", 100)
    workers.start(HOOKBIRD_MAX_ATTEMPTS="2")
    event_id = push()
    failed = FailedJobRegistry("hookbird", connection=redis_client)
    wait_for(lambda: event_id in failed.get_job_ids(), message="the dead letter")
    wait_for(lambda: log_lines(workers, "push sent to the dead letter"), message="its log line")
    failures = log_lines(workers, "handler failed")
    assert [f.get("outcome") for f in failures] == ["retry", "dead"]
    assert [f.get("attempt") for f in failures] == [1, 2]
    assert all(f["handler"] == CRM and f["event_id"] == event_id for f in failures)
    output = workers.output()
    assert f"Job {event_id}: scheduled to run again at" in output
    assert "remaining" not in output


def test_retry_later_is_honoured(push: Pusher, workers: Workers, redis_client: redis.Redis) -> None:
    """RetryLater(after=2) from a handler: retried, no sooner than two seconds later."""
    redis_client.set("test:retry_after:billing", 2)
    workers.start()
    event_id = push(action="sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), message="success")
    started = [json.loads(s) for s in redis_client.lrange("test:started", 0, -1)]
    assert len(started) == 2
    (call,) = calls(redis_client)
    first = json.loads(state(redis_client, event_id)["handlers"])[BILLING]
    assert call["attempt"] == 2
    assert first["attempts"] == 2


def test_permanent_error_dead_letters_then_requeue_succeeds(
    push: Pusher, workers: Workers, redis_client: redis.Redis, redis_url: str
) -> None:
    """NotFound → dead letter at once (no retry) with the reason; requeue after a fix works."""
    redis_client.set("test:dead:billing", 1)
    workers.start()
    event_id = push(action="sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")
    failed = FailedJobRegistry("hookbird", connection=redis_client)
    wait_for(lambda: event_id in failed.get_job_ids(), message="the dead letter")
    assert redis_client.llen("test:started") == 1
    assert "NotFound" in state(redis_client, event_id)["error"]

    listing = run_cli(redis_url, "failed", "list")
    assert listing.returncode == 0, listing.stderr
    assert event_id in listing.stdout
    assert "contact 42 is gone" in listing.stdout

    redis_client.delete("test:dead:billing")
    requeued = run_cli(redis_url, "failed", "requeue", event_id)
    assert requeued.returncode == 0, requeued.stderr
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), message="success")
    assert event_id not in failed.get_job_ids()
    (call,) = calls(redis_client)
    assert call["attempt"] == 1  # a requeue gives the failed handler fresh attempts


def test_out_of_attempts_goes_to_the_dead_letter(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A handler that keeps failing transiently is dead-lettered after HOOKBIRD_MAX_ATTEMPTS."""
    redis_client.set("test:fail:crm", 100)
    workers.start(HOOKBIRD_MAX_ATTEMPTS="2")
    event_id = push()
    failed = FailedJobRegistry("hookbird", connection=redis_client)
    wait_for(lambda: event_id in failed.get_job_ids(), message="the dead letter")
    assert redis_client.llen("test:started") == 2
    assert "gave up after 2 attempts" in state(redis_client, event_id)["error"]


def test_push_with_no_handler_is_finished(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A push no handler wants is marked succeeded; its description says no handlers."""
    workers.start()
    event_id = push(action="estimate_created", entity_type="Estimate")
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), message="success")
    job = Job.fetch(event_id, connection=redis_client)
    assert job.description is not None
    assert job.description.endswith("→ (no handlers)")


def test_an_unexpected_exception_is_retried_not_dead_lettered(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A bug-like exception (KeyError) is retried with backoff, and the retry succeeds."""
    redis_client.set("test:boom:crm", 1)
    workers.start()
    event_id = push()
    wait_for(lambda: status_is(redis_client, event_id, "succeeded"), message="success")
    (call,) = calls(redis_client)
    assert call["attempt"] == 2
    outcomes = json.loads(state(redis_client, event_id)["handlers"])
    assert outcomes[CRM]["status"] == "ok"


def test_a_damaged_stored_push_is_dead_lettered_and_frees_its_entity(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A stored push that no longer parses goes to the dead letter with the reason, and the
    next push for the same entity is handled."""
    damaged = push(entity_id="789")
    stored = unpack_push(redis_client.get(f"hookbird:event:{damaged}"))
    del stored["body"]
    redis_client.set(f"hookbird:event:{damaged}", pack_push(stored, b"{not json"), keepttl=True)
    after = push(entity_id="789")
    workers.start()
    wait_for(lambda: status_is(redis_client, after, "succeeded"), message="the next push")
    assert status_is(redis_client, damaged, "dead")
    assert "not JSON" in state(redis_client, damaged)["error"]
    assert damaged in FailedJobRegistry("hookbird", connection=redis_client).get_job_ids()


def test_a_push_too_deep_to_parse_is_dead_lettered_and_the_next_runs_at_once(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A stored body nested 100,000 levels deep (no receiver stores one now; one written
    into Redis by other means) makes the worker's parser raise RecursionError on every
    Python hookbird supports (3.12 parses 1,020 levels, 3.13 5,000): the push is
    dead-lettered with the reason and frees its entity, so the next push for it runs
    without waiting."""
    poison = push(entity_id="790")
    stored = unpack_push(redis_client.get(f"hookbird:event:{poison}"))
    body = json.loads(stored.pop("body"))
    deep = b"[" * 100_000 + b"]" * 100_000
    raw = json.dumps({**body, "entity": "DEEP"}).encode().replace(b'"DEEP"', deep)
    redis_client.set(f"hookbird:event:{poison}", pack_push(stored, raw), keepttl=True)
    after = push(entity_id="790")
    workers.start()
    wait_for(lambda: status_is(redis_client, after, "succeeded"), message="the next push")
    assert "parks" not in state(redis_client, after), "the next push had to wait its turn"
    assert status_is(redis_client, poison, "dead")
    assert "RecursionError" in state(redis_client, poison)["error"]
    assert not redis_client.keys("hookbird:entity-lock:*")
    failed = FailedJobRegistry("hookbird", connection=redis_client)
    assert poison in failed.get_job_ids()
    result = Job.fetch(poison, connection=redis_client).latest_result()
    assert result is not None
    assert "DeadLettered" in (result.exc_string or "")


def test_pushes_stored_as_hashes_by_an_older_receiver_are_still_handled(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Receivers before 2026-11-22 kept a push as a hash of fields. Pushes queued across an
    upgrade are handled in order and shown by the event log all the same."""
    first, second = push(entity_id="321"), push(entity_id="321")
    for event_id in (first, second):
        key = f"hookbird:event:{event_id}"
        fields: dict[FieldT, EncodableT] = dict(unpack_push(redis_client.get(key)).items())
        redis_client.delete(key)
        redis_client.hset(key, mapping=fields)
    assert redis_client.type(f"hookbird:event:{first}") == b"hash"
    workers.start()
    wait_for(lambda: status_is(redis_client, second, "succeeded"), message="both pushes")
    assert status_is(redis_client, first, "succeeded")
    row = admin.get_event(redis_client, first)
    assert row is not None
    assert (row.action, row.entity_id) == ("contact_created", "321")
    assert admin.raw_push(redis_client, first)["body"]["entity_id"] == "321"


@pytest.mark.parametrize("cls", [HookbirdSimpleWorker, HookbirdForkWorker])
def test_a_worker_runs_by_the_settings_it_is_built_with(
    cls: type[HookbirdMixin], redis_client: redis.Redis
) -> None:
    """Settings go to the constructor; without them (RQ's own constructor call) the defaults."""
    queue = Queue("hookbird", connection=redis_client)
    given = Settings(worker_liveness=7, shutdown_grace=3, max_attempts=2)
    worker = cls([queue], connection=redis_client, settings=given)
    assert (worker.liveness, worker.shutdown_grace, worker.max_attempts) == (7, 3, 2)
    worker.bootstrap()
    try:
        assert 0 < redis_client.pttl(recovery.alive_key(worker.name)) <= 7000
    finally:
        worker.teardown()
    found = cls.find_by_key(worker.key, connection=redis_client)  # how RQ builds one
    assert isinstance(found, cls)
    defaults = Settings()
    assert (found.liveness, found.shutdown_grace, found.max_attempts) == (
        defaults.worker_liveness,
        defaults.shutdown_grace,
        defaults.max_attempts,
    )
