"""The enqueue script's text: constants written in as Lua literals, read back by Redis."""

from __future__ import annotations

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookbird import keys
from receiver.enqueue import enqueue_script, job_template, lua_string


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
    args = ["60", "60", "1795323120.5"]
    args += ["ev1", "hookbird:dedup:x", "1795323120.5", "2026-11-22T05:00:00.000000Z"]
    args += ["contact_created", b"meta", b"stored"]
    redis_client.eval(script, 3, keys.RQ_QUEUES, "rq:queue:hookbird", keys.EVENTS_INDEX, *args)
    job = redis_client.hgetall(keys.rq_job_key("ev1"))
    template = {
        k.encode(): v if isinstance(v, bytes) else str(v).encode()
        for k, v in job_template("hookbird").items()
    }
    assert {k: v for k, v in job.items() if k in template} == template
    assert job[b"description"] == b"contact_created"
    assert job[b"meta"] == b"meta"
    assert redis_client.get(keys.event_key("ev1")) == b"stored"
