"""Workers record the versions they see (hookbird.versions): real receiver, real worker."""

from __future__ import annotations

import redis

from hookbird.versions import Versions
from tests.workers.conftest import Pusher, Workers, calls, wait_for


def test_a_handled_push_records_its_entity_version(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """contact_changed version 100, then a destroy: the version is seen, then forgotten."""
    workers.start()
    push(action="contact_changed", entity={"id": "456", "version": 100})
    wait_for(lambda: Versions(redis_client).all("123", "Contact"), message="a version seen")
    assert Versions(redis_client).all("123", "Contact") == {"456": (100, False)}
    assert calls(redis_client)[0]["source"] == "push"
    push(action="contact_destroyed", entity={"id": "456"})
    wait_for(
        lambda: any(c["action"] == "contact_destroyed" for c in calls(redis_client)),
        message="the destroy handled",
    )
    assert Versions(redis_client).all("123", "Contact") == {}
