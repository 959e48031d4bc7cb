"""The enqueue script's text: constants written in as Lua literals, read back by Redis."""

from __future__ import annotations

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookbird import keys
from receiver.enqueue import (
    LEGACY_MARGIN,
    enqueue_script,
    job_template,
    legacy_window,
    lua_string,
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.binary(max_size=300))
def test_any_bytes_survive_a_lua_string_literal(value: bytes, redis_client: redis.Redis) -> None:
    assert redis_client.eval(f"return {lua_string(value)}", 0) == value


def test_the_script_writes_the_installed_rqs_job_fields(redis_client: redis.Redis) -> None:
    """A push stored by the filled-in script has exactly RQ's template fields plus its own."""
    script = enqueue_script("hookbird")
    assert "{{" not in script
    args: list[str | bytes] = ["60", "60", "1795323120.5"]
    args += ["ev1", "hookbird:dedup:x", "", "", "1795323120.5", "2026-11-22T05:00:00.000000Z"]
    args += ["contact_created", b"stored"]
    redis_client.eval(script, 3, keys.RQ_QUEUES, "rq:queue:hookbird", keys.EVENTS_INDEX, *args)
    job = redis_client.hgetall(keys.rq_job_key("ev1"))
    template = {
        k.encode(): v if isinstance(v, bytes) else str(v).encode()
        for k, v in job_template("hookbird").items()
    }
    assert {k: v for k, v in job.items() if k in template} == template
    assert job[b"description"] == b"contact_created"
    assert b"meta" not in job  # the worker reads the entity from the stored push
    assert redis_client.get(keys.event_key("ev1")) == b"stored"


def test_a_batch_queues_its_new_pushes_in_order_and_skips_repeats(
    redis_client: redis.Redis,
) -> None:
    """The queue and the event index are written once per batch, in the batch's order."""
    script = enqueue_script("hookbird")

    def push(event_id: str, dedup: str, received_at: str) -> list[str | bytes]:
        stamp = "2026-11-22T05:00:00.000000Z"
        return [event_id, dedup, "", "", received_at, stamp, "contact_created", b"stored"]

    args: list[str | bytes] = ["60", "60", "1795323125.0"]
    args += push("ev1", "hookbird:dedup:a", "1795323121.0")
    args += push("ev2", "hookbird:dedup:b", "1795323122.0")
    args += push("ev3", "hookbird:dedup:a", "1795323123.0")  # repeats ev1
    args += push("ev4", "hookbird:dedup:c", "1795323124.0")
    queue = keys.rq_queue_key("hookbird")
    result = redis_client.eval(script, 3, keys.RQ_QUEUES, queue, keys.EVENTS_INDEX, *args)

    assert result == [1, b"ev1", 1, b"ev2", 0, b"ev1", 1, b"ev4"]
    assert redis_client.lrange(queue, 0, -1) == [b"ev1", b"ev2", b"ev4"]
    assert redis_client.zrange(keys.EVENTS_INDEX, 0, -1, withscores=True) == [
        (b"ev1", 1795323121.0),
        (b"ev2", 1795323122.0),
        (b"ev4", 1795323124.0),
    ]
    assert redis_client.smembers(keys.RQ_QUEUES) == {queue.encode()}
    assert not redis_client.exists(keys.rq_job_key("ev3"), keys.event_key("ev3"))

    # a batch of repeats only writes nothing at all
    again = redis_client.eval(script, 3, keys.RQ_QUEUES, queue, keys.EVENTS_INDEX, *args[:11])
    assert again == [0, b"ev1"]
    assert redis_client.llen(queue) == 3


def test_unscoped_keys_are_read_one_dedup_ttl_and_a_margin_after_the_upgrade() -> None:
    assert legacy_window(0, 600) == 0.0
    assert legacy_window(1_000, 600) == (1_000 + 600 + LEGACY_MARGIN) * 1e9
