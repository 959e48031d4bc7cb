"""Real worker processes handle pushes; the receiver's /metrics shows the whole pipeline."""

from __future__ import annotations

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from hookbird.subscriptions import SubscriptionStore
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.workers.conftest import Pusher, Workers, run_cli, wait_for
from workers.reconcile import reconciled_key

pytestmark = pytest.mark.slow

CRM = "tests.workers.sample_handlers:sync_contact"
BILLING = "tests.workers.sample_handlers:mark_paid"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(push: Pusher) -> Samples:
    """Every sample of the receiver's /metrics, by name and labels."""
    response = push.http.get(f"{push.base}/metrics")
    assert response.status_code == 200
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def test_metrics_count_what_two_worker_processes_did(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Handled, retried and dead-lettered runs from two workers add up on one /metrics."""
    redis_client.set("test:fail:crm", 1)  # the first crm run fails once, then succeeds
    redis_client.set("test:dead:billing", 1)
    workers.start()
    workers.start()
    push(entity_id="1")
    push(entity_id="2")
    push(action="sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")

    def settled() -> Samples | None:
        samples = scrape(push)
        handled = value(samples, "hookbird_handler_runs_total", handler=CRM, outcome="handled")
        dead = value(
            samples, "hookbird_handler_runs_total", handler=BILLING, outcome="dead_lettered"
        )
        return samples if handled == 2 and dead == 1 else None

    samples = wait_for(settled, timeout=60, message="the workers' counts on /metrics", every=0.3)
    assert value(samples, "hookbird_pipeline_metrics_up") == 1
    assert value(samples, "hookbird_pushes_total", outcome="accepted") == 3
    assert value(samples, "hookbird_handler_runs_total", handler=CRM, outcome="retry") == 1
    assert value(samples, "hookbird_retries_scheduled_total") == 1
    assert value(samples, "hookbird_handler_duration_seconds_count", handler=CRM) == 3
    assert value(samples, "hookbird_handler_duration_seconds_count", handler=BILLING) == 1
    assert value(samples, "hookbird_handler_duration_seconds_bucket", handler=CRM, le="+Inf") == 3
    assert (value(samples, "hookbird_handler_duration_seconds_sum", handler=CRM) or 0) > 0
    assert value(samples, "hookbird_dead_letter_pushes") == 1
    assert value(samples, "hookbird_queue_depth") == 0
    assert value(samples, "hookbird_queue_oldest_age_seconds") == 0
    assert value(samples, "hookbird_workers_alive") == 2


def test_a_fork_workers_children_count_too(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """With HOOKBIRD_WORKER_CLASS=fork the counts of each child reach /metrics."""
    workers.start(HOOKBIRD_WORKER_CLASS="fork")
    push(entity_id="7")

    def handled() -> bool:
        samples = scrape(push)
        return value(samples, "hookbird_handler_runs_total", handler=CRM, outcome="handled") == 1

    wait_for(handled, timeout=60, message="the child's count on /metrics", every=0.3)


def test_queue_depth_and_the_oldest_pushs_age_without_workers(
    push: Pusher, redis_client: redis.Redis
) -> None:
    """Pushes nobody handles: the queue is as deep as them and its head has waited."""
    push(entity_id="1")
    push(entity_id="2")
    samples = scrape(push)
    assert value(samples, "hookbird_queue_depth") == 2
    age = value(samples, "hookbird_queue_oldest_age_seconds")
    assert age is not None
    assert 0 < age < 600
    assert value(samples, "hookbird_workers_alive") == 0
    assert value(samples, "hookbird_handler_runs_total", handler=CRM, outcome="handled") is None


def test_metrics_still_answer_when_redis_is_gone(push: Pusher, redis_client: redis.Redis) -> None:
    """Redis unreachable at scrape: the receiver's own counts, and pipeline_metrics_up 0."""
    push(entity_id="1")
    redis_client.client_pause(3000)  # longer than the scrape's one-second wait
    try:
        samples = scrape(push)
    finally:
        redis_client.client_unpause()
    assert value(samples, "hookbird_pipeline_metrics_up") == 0
    assert value(samples, "hookbird_pushes_total", outcome="accepted") == 1
    assert value(samples, "hookbird_queue_depth") is None


def test_a_scheduled_reconciliation_that_finds_a_changed_record_shows_on_metrics(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """Workers reconcile by themselves: the baseline run, then a run that finds the contact
    changed meanwhile, counted by resource and kind, with the run's outcome and time."""
    with FakeMoneybird().serve() as fake:
        contact = fake.add("contacts", {"version": 100})
        SubscriptionStore(redis_client).add(
            webhook_id="4180000000000000001", administration_id=ADMINISTRATION, token="t" * 24
        )
        workers.start(
            MONEYBIRD_API_TOKEN=TOKEN,
            MONEYBIRD_API_URL=fake.api_url,
            HOOKBIRD_RECONCILE_INTERVAL="1",
            HOOKBIRD_WEBHOOK_WATCHDOG_INTERVAL="0",
        )
        wait_for(
            lambda: redis_client.hexists(reconciled_key(ADMINISTRATION), "contacts"),
            timeout=30,
            message="the baseline",
        )
        fake.change("contacts", contact["id"], company_name="Changed")

        def found() -> Samples | None:
            samples = scrape(push)
            changed = value(
                samples, "hookbird_reconcile_records_total", resource="contacts", kind="changed"
            )
            return samples if changed == 1 else None

        samples = wait_for(found, timeout=60, message="the change on /metrics", every=0.3)
    assert value(samples, "hookbird_reconcile_records_total", resource="contacts", kind="new") == 0
    ok = value(samples, "hookbird_reconcile_runs_total", trigger="scheduled", outcome="ok")
    assert (ok or 0) >= 2  # the baseline and the run that found the change
    assert value(samples, "hookbird_reconcile_runs_total", trigger="cli", outcome="ok") == 0
    last = value(samples, "hookbird_reconcile_last_success_timestamp_seconds", trigger="scheduled")
    assert (last or 0) > 0
    assert value(samples, "hookbird_reconcile_interval_seconds") == 3600  # the receiver's


def test_hookbird_reconcile_counts_what_it_found_before_it_exits(
    push: Pusher, redis_url: str
) -> None:
    """The CLI has no liveness beat: its run and its findings reach /metrics as it exits,
    a failed run too."""
    env = {"MONEYBIRD_API_TOKEN": TOKEN}
    args = ("reconcile", "--administration", ADMINISTRATION, "--resources", "contacts")
    with FakeMoneybird().serve() as fake:
        env["MONEYBIRD_API_URL"] = fake.api_url
        kept, gone = fake.add("contacts", {"version": 100}), fake.add("contacts", {"version": 100})
        assert run_cli(redis_url, *args, **env).returncode == 0  # the baseline
        fake.change("contacts", kept["id"], company_name="Changed")
        fake.remove("contacts", gone["id"])
        fake.add("contacts", {"version": 100})
        result = run_cli(redis_url, *args, **env)
        assert result.returncode == 0, result.stderr
    failed = run_cli(redis_url, *args, **env)  # Moneybird is gone
    assert failed.returncode != 0
    samples = scrape(push)
    for kind in ("new", "changed", "gone"):
        assert (
            value(samples, "hookbird_reconcile_records_total", resource="contacts", kind=kind) == 1
        ), kind
    assert value(samples, "hookbird_reconcile_runs_total", trigger="cli", outcome="ok") == 2
    assert value(samples, "hookbird_reconcile_runs_total", trigger="cli", outcome="failed") == 1
    last = value(samples, "hookbird_reconcile_last_success_timestamp_seconds", trigger="cli")
    assert (last or 0) > 0


def test_the_watchdogs_findings_show_on_metrics(
    push: Pusher, workers: Workers, redis_client: redis.Redis
) -> None:
    """A failing webhook found by the workers' watchdog is counted by kind of problem."""
    with FakeMoneybird().serve() as fake:
        hook = fake.add("webhooks", {"url": "https://hooks.example/x", "last_http_status": 502})
        SubscriptionStore(redis_client).add(
            webhook_id=hook["id"], administration_id=ADMINISTRATION, token="t" * 24
        )
        workers.start(
            MONEYBIRD_API_TOKEN=TOKEN,
            MONEYBIRD_API_URL=fake.api_url,
            HOOKBIRD_WEBHOOK_WATCHDOG_INTERVAL="1",
            HOOKBIRD_RECONCILE_INTERVAL="0",
        )

        def found() -> Samples | None:
            samples = scrape(push)
            failing = value(samples, "hookbird_watchdog_findings_total", problem="failing") or 0
            return samples if failing >= 1 else None

        samples = wait_for(found, timeout=60, message="the finding on /metrics", every=0.3)
    assert value(samples, "hookbird_watchdog_findings_total", problem="deactivated") == 0
