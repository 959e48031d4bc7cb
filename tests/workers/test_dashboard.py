"""rq-dashboard, run as the Procfile runs it, shows hookbird's jobs the way operators need."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
import redis
from rq.job import Job

from hookbird.redis_server import free_port
from tests.support import as_bytes
from tests.workers.conftest import Pusher, Workers, wait_for
from workers.store import state_key

pytestmark = pytest.mark.slow


@pytest.fixture
def dashboard(redis_url: str) -> Iterator[str]:
    exe = shutil.which("rq-dashboard", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("rq-dashboard is not installed (pip install 'hookbird[dashboard]')")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--redis-url", redis_url, "--port", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx2.get(f"{base}/0/data/queues.json", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    try:
        wait_for(up, timeout=20, message="rq-dashboard", every=0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def test_dead_lettered_push_shows_in_the_dashboard_with_a_readable_description(
    push: Pusher, workers: Workers, redis_client: redis.Redis, dashboard: str
) -> None:
    """The failed registry in rq-dashboard lists the push as `action entity adm → handler`."""
    redis_client.set("test:dead:crm", 1)
    workers.start()
    event_id = push(entity_id="456")
    wait_for(lambda: redis_client.hget(state_key(event_id), "status") == b"dead", message="dead")
    listing = httpx2.get(f"{dashboard}/0/data/jobs/hookbird/failed/8/asc/1.json", timeout=5)
    (job,) = listing.json()["jobs"]
    assert job["id"] == event_id
    assert job["description"] == (
        "contact_created Contact 456 adm 123 → tests.workers.sample_handlers:sync_contact"
    )
    assert "contact 42 is gone" in job["exc_info"]
    detail = httpx2.get(f"{dashboard}/0/data/job/{event_id}.json", timeout=5).json()
    assert '"entity_id": "456"' in detail["metadata"]


def test_markup_in_a_push_never_reaches_the_dashboard(
    push: Pusher, workers: Workers, redis_client: redis.Redis, dashboard: str
) -> None:
    """rq-dashboard renders job descriptions and meta unescaped: an `action` or `entity_type`
    carrying HTML is written into the job, by the receiver and by the worker, as safe text."""
    action, entity_type = "<img src=x onerror=alert(1)>", "<script>alert(2)</script>"
    event_id = push(action=action, entity_type=entity_type)
    queued = as_bytes(redis_client.hget(f"rq:job:{event_id}", "description") or b"")
    assert queued.startswith(b"_img_src_x_onerror_alert_1__")
    workers.start()
    wait_for(
        lambda: redis_client.hget(state_key(event_id), "status") == b"succeeded", message="handled"
    )
    job = Job.fetch(event_id, connection=redis_client)
    assert job.description is not None
    assert "<" not in job.description
    assert job.meta["action"] == "_img_src_x_onerror_alert_1__"
    assert not any("<" in str(value) for value in job.meta.values())
    for name, value in redis_client.hgetall(f"rq:job:{event_id}").items():
        assert b"<img" not in value, name
        assert b"<script" not in value, name
    detail = httpx2.get(f"{dashboard}/0/data/job/{event_id}.json", timeout=5).json()
    assert "<" not in detail["description"] + detail["metadata"]
