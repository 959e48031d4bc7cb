"""A push's timeline: every attempt of every handler, with its duration and outcome."""

from __future__ import annotations

import json

import httpx2
import pytest
import redis

from tests.console.conftest import Serve
from tests.workers.conftest import Pusher, Workers, wait_for, workers
from workers.running import HISTORY
from workers.store import state_key

__all__ = ["workers"]

pytestmark = pytest.mark.slow

CRM = "tests.workers.sample_handlers:sync_contact"


def test_each_attempt_is_kept_and_shown(
    serve_console: Serve, workers: Workers, redis_client: redis.Redis, http: httpx2.Client
) -> None:
    """Two transient failures, then success: the record keeps three attempts (failed,
    failed, ok, each timed) and the push's page lists them in order."""
    redis_client.set("test:fail:crm", 2)
    workers.start()
    with serve_console() as base:
        pusher = Pusher(base)
        try:
            event_id = pusher(entity_id="456")
        finally:
            pusher.http.close()
        wait_for(
            lambda: redis_client.hget(state_key(event_id), "status") == b"succeeded",
            timeout=30,
            message="the third attempt",
        )
        raw = redis_client.hget(state_key(event_id), "handlers")
        assert isinstance(raw, bytes)
        history = json.loads(raw)[CRM]["history"]
        assert [a["status"] for a in history] == ["failed", "failed", "ok"]
        assert all(isinstance(a["ms"], float) and a["ms"] >= 0 for a in history)
        assert history[0]["error"] == "ServerError: Moneybird answered 503"
        assert "error" not in history[2]
        assert history[0]["at"] < history[1]["at"] < history[2]["at"]

        page = http.get(f"{base}/console/events/{event_id}").text
        timeline = page.split('id="timeline"')[1].split("</table>")[0]
        assert timeline.count(CRM) == 3
        assert timeline.index("failed") < timeline.index(">ok<")
        assert timeline.count("Moneybird answered 503") == 2
        assert timeline.count(" ms</td>") >= 3


def test_history_is_bounded() -> None:
    """A push retried for days keeps only its newest attempts."""
    from workers.running import _remember

    record: dict[str, object] = {"at": 1.0, "status": "failed", "error": "boom"}
    for _ in range(HISTORY + 5):
        _remember(record, 0.0)
    assert isinstance(record["history"], list)
    assert len(record["history"]) == HISTORY
