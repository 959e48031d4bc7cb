"""The console in a real browser: pushes through a real receiver and real workers, then
an operator filters, opens the failed push, presses Replay and sees it succeed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.console.browser import chromium, missing
from tests.console.conftest import Serve
from tests.workers.conftest import Pusher, Workers, wait_for, workers
from workers.store import state_key

__all__ = ["workers"]

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing() is not None, reason=str(missing()))]


def status(client: redis.Redis, event_id: str) -> bytes | None:
    value = client.hget(state_key(event_id), "status")
    assert value is None or isinstance(value, bytes)
    return value


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium() as opened:
        yield opened


def test_filter_open_a_failed_push_and_replay_it(
    serve_console: Serve, workers: Workers, redis_client: redis.Redis, page: Any
) -> None:
    """A dead-lettered contact push is found by filter, shows its failed attempt with its
    traceback, and after Replay (its handler fixed) shows as succeeded."""
    redis_client.set("test:dead:crm", 1)  # sync_contact fails for good until this goes
    workers.start()
    with serve_console() as base:
        push = Pusher(base)
        try:
            paid = push(
                action="sales_invoice_state_changed_to_paid",
                entity_type="SalesInvoice",
                entity_id="789",
            )
            contact = push(entity_id="456")
        finally:
            push.http.close()
        wait_for(lambda: status(redis_client, paid) == b"succeeded", message="invoice handled")
        wait_for(lambda: status(redis_client, contact) == b"dead", message="contact dead")

        page.goto(f"{base}/console/")
        rows = page.locator("#pushes tbody tr")
        assert rows.count() == 2
        page.fill("input[name=action]", "contact")
        page.select_option("select[name=outcome]", "dead")
        page.click("button[type=submit]")
        assert "action=contact" in page.url
        assert rows.count() == 1
        assert "contact_created" in rows.first.inner_text()
        assert "dead" in rows.first.inner_text()

        page.click(f"a[href$='/events/{contact}']")
        assert page.inner_text("#outcome") == "dead"
        assert "in the dead letter" in page.inner_text("main")
        timeline = page.inner_text("#timeline")
        assert "received" in timeline
        assert "tests.workers.sample_handlers:sync_contact" in timeline
        assert "contact 42 is gone" in timeline
        assert "dead-lettered" in timeline
        assert "NotFound" in page.inner_text("main pre")  # the traceback

        redis_client.delete("test:dead:crm")
        page.click("#replay")
        assert "Replay queued" in page.inner_text("#done")
        wait_for(lambda: status(redis_client, contact) == b"succeeded", message="replayed")
        page.reload()
        assert page.inner_text("#outcome") == "succeeded"
        assert "ok" in page.inner_text("#timeline")
        assert page.locator("#requeue").count() == 0

        page.goto(f"{base}/console/health")
        assert page.inner_text("#dead") == "0"


def test_requeue_a_dead_push_from_its_page(
    serve_console: Serve, workers: Workers, redis_client: redis.Redis, page: Any
) -> None:
    """Requeue, on a dead-lettered push's page, runs its failed handler again and the
    page then shows it handled, out of the dead letter."""
    redis_client.set("test:dead:crm", 1)
    workers.start()
    with serve_console() as base:
        push = Pusher(base)
        try:
            contact = push(entity_id="457")
        finally:
            push.http.close()
        wait_for(lambda: status(redis_client, contact) == b"dead", message="contact dead")
        page.goto(f"{base}/console/health")
        assert page.inner_text("#dead") == "1"
        page.goto(f"{base}/console/events/{contact}")
        redis_client.delete("test:dead:crm")
        page.click("#requeue")
        assert page.inner_text("#done") == "Requeued."
        wait_for(lambda: status(redis_client, contact) == b"succeeded", message="requeued")
        page.reload()
        assert page.inner_text("#outcome") == "succeeded"
        assert page.locator("#requeue").count() == 0
        assert "in the dead letter" not in page.inner_text("main")
