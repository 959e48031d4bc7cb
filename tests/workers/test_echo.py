"""Echo suppression with a real worker: a handler's own write to Moneybird comes back as a
push marked ``event.own_write``, which a ``skip_own_writes`` route does not take."""

from __future__ import annotations

import json
from typing import Any

import redis

from tests.fake_moneybird import TOKEN, FakeMoneybird
from tests.workers.conftest import Pusher, Workers, wait_for


def notes(client: redis.Redis, name: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(f"test:echo:{name}", 0, -1)]


def test_the_push_back_about_a_handlers_own_write_is_marked_and_skipped(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A change → two_way writes back (version + 1); Moneybird's push of that version is
    own_write: two_way skips it, the plain watcher sees it marked; a later change by
    someone else is not own_write and reaches two_way again."""
    with FakeMoneybird(administrations=("123",)).serve() as fake:
        contact = fake.add("contacts", {"company_name": "Jansen", "version": 100}, "123")
        workers.start(
            HOOKBIRD_HANDLERS="tests.workers.echo_handlers",
            MONEYBIRD_API_TOKEN=TOKEN,
            MONEYBIRD_API_URL=fake.api_url,
        )
        changed = fake.change("contacts", contact["id"], "123", company_name="Jansen BV")
        push(action="contact_changed", entity_id=contact["id"], entity=changed)
        wait_for(
            lambda: (
                (fake.record("contacts", contact["id"], "123") or {}).get("company_name")
                == "Synced"
            ),
            timeout=30,
            message="the handler's write",
        )
        written = fake.record("contacts", contact["id"], "123") or {}
        push(action="contact_changed", entity_id=contact["id"], entity=dict(written))
        wait_for(lambda: len(notes(redis_client, "watcher")) >= 2, message="the echo handled")
        later = fake.change("contacts", contact["id"], "123", company_name="Someone else")
        push(action="contact_changed", entity_id=contact["id"], entity=later)
        wait_for(lambda: len(notes(redis_client, "watcher")) >= 3, message="the later change")
        wait_for(lambda: len(notes(redis_client, "two_way")) >= 2, message="two_way again")
    assert [n["own"] for n in notes(redis_client, "watcher")] == [False, True, False]
    assert [n["version"] for n in notes(redis_client, "two_way")] == [
        changed["version"],
        later["version"],
    ]
