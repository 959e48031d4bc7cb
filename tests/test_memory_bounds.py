"""Redis memory stays bounded: after pushes are handled, every key expires or is capped.

The same audit as ``bench/memory.py`` (``bench/memory_keys.py``), on a few pushes run
through the real receiver and a real ``hookbird worker`` process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import redis
from rq import Queue

from bench.memory_keys import CAPPED, PATTERNS, audit, pattern_of, unbounded
from hookbird.settings import Settings
from receiver.app import create_app
from tests.support import serve_in_thread
from workers import recovery
from workers.store import state_key

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "memory-tests-webhook-token-0123"
HOOKBIRD = (sys.executable, "-c", "import sys; from hookbird.cli import main; sys.exit(main())")


def body(entity_id: int, version: int) -> bytes:
    entity = {"id": str(entity_id), "company_name": "Bakkerij Jansen", "version": version}
    return json.dumps(
        {
            "administration_id": "123",
            "webhook_id": "4180000000000000001",
            "webhook_token": TOKEN,
            "entity_type": "Contact",
            "entity_id": str(entity_id),
            "action": "contact_changed",
            "entity": entity,
        }
    ).encode()


def receive(redis_url: str, count: int) -> list[str]:
    """Send ``count`` pushes (two per entity) through the real receiver; their event ids."""
    settings = Settings(redis_url=redis_url, webhook_token=TOKEN)
    ids = []
    with serve_in_thread(create_app(settings)) as base, httpx2.Client(timeout=10) as http:
        for n in range(count):
            response = http.post(
                f"{base}/webhooks/moneybird",
                content=body(456000 + n // 2, 100 + n),
                headers={"Idempotency-Key": f"memory-test-{n}"},
            )
            assert response.json()["status"] == "accepted", response.text
            ids.append(response.json()["event_id"])
    return ids


def test_pattern_of_names_each_key_kind() -> None:
    """Per-push keys fold into one pattern; queue-named RQ keys name the queue generically."""
    event_id = "018f3a2b4c5d9e8f7a6b5c4d3e2f"
    assert pattern_of(f"hookbird:event:{event_id}") == "hookbird:event:<id>"
    assert pattern_of(f"rq:job:{event_id}") == "rq:job:<id>"
    assert pattern_of("rq:finished:hookbird") == "rq:finished:<queue>"
    assert pattern_of("hookbird:events") == "hookbird:events"
    assert pattern_of("hookbird:surprise:1:2") == "hookbird:surprise:*"


def test_every_key_has_a_ttl_or_a_cap(redis_url: str, redis_client: redis.Redis) -> None:
    """Pushes received and handled (two per entity) leave only keys that expire or are capped."""
    receive(redis_url, 12)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "MONEYBIRD_"))}
    env.update(
        REDIS_URL=redis_url,
        HOOKBIRD_HANDLERS="bench.memory_handlers",
        HOOKBIRD_ENTRY_POINTS="off",
        HOOKBIRD_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    subprocess.run([*HOOKBIRD, "worker", "--burst"], cwd=ROOT, env=env, check=True, timeout=60)
    assert redis_client.zcard("rq:finished:hookbird") == 12

    groups = audit(redis_client)
    assert not unbounded(groups), [(g.pattern, g.keys[:3]) for g in unbounded(groups)]
    known = {name for name, _ in PATTERNS} | set(CAPPED)
    assert {g.pattern for g in groups if g.without_ttl} <= known
    patterns = {g.pattern for g in groups}
    for expected in ("hookbird:dedup:<sha256>", "hookbird:event:<id>", "hookbird:state:<id>"):
        assert expected in patterns
    assert "hookbird:version:<handler>:<entity>" in patterns


def test_a_push_dead_lettered_by_the_reaper_keeps_its_record_for_the_dead_letter_only(
    redis_url: str, redis_client: redis.Redis
) -> None:
    """A push whose worker died before any run finished: its crash record gets a TTL too."""
    (event_id,) = receive(redis_url, 1)
    redis_client.hset(f"rq:job:{event_id}", mapping={"status": "started", "worker_name": "gone"})
    redis_client.sadd(recovery.WORKERS, "gone")  # listed, but no liveness key: dead
    started = Queue("hookbird", connection=redis_client).started_job_registry.key
    redis_client.zadd(started, {f"{event_id}:run": 1})
    assert not redis_client.exists(state_key(event_id))

    assert recovery.reap(redis_client, "hookbird", max_attempts=1) == [event_id]

    assert redis_client.hget(state_key(event_id), "status") == b"dead"
    thirty_days = 30 * 24 * 3600
    assert thirty_days - 60 < redis_client.ttl(state_key(event_id)) <= thirty_days
    assert thirty_days - 60 < redis_client.ttl(f"hookbird:event:{event_id}") <= thirty_days
    assert not unbounded(audit(redis_client))
