"""``hookbird reconcile`` against the fake Moneybird and a real Redis: what it compares,
what it queues, what it costs in API calls, and how it fails."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis
from rq import Queue

from hookbird import keys
from hookbird.cli import main
from hookbird.events import event_from_stored
from hookbird.versions import Versions
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from workers.store import stored_push


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, fake: FakeMoneybird) -> None:
    for name, value in {
        "REDIS_URL": redis_url,
        "MONEYBIRD_API_TOKEN": TOKEN,
        "MONEYBIRD_API_URL": fake.api_url,
        "HOOKBIRD_LOG_FORMAT": "json",
        "HOOKBIRD_LOG_LEVEL": "warning",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir("/")  # no stray .env


def reconcile(capsys: pytest.CaptureFixture[str], *more: str) -> tuple[int, str, str]:
    code = main(["reconcile", "--administration", ADMINISTRATION, *more])
    out, err = capsys.readouterr()
    return code, out, err


def row(out: str, resource: str) -> list[int]:
    """seen, new, changed, gone, calls of one resource in the summary."""
    line = next(line for line in out.splitlines() if line.startswith(resource + " "))
    return [int(n) for n in line.split()[1:]]


def queued(client: redis.Redis) -> list[tuple[str, str, str, int | None]]:
    """(action, entity id, source, version) of every queued event, in queue order."""
    found = []
    for event_id in Queue("hookbird", connection=client).get_job_ids():
        event = event_from_stored(event_id, stored_push(client, event_id))
        found.append((event.action, event.entity_id or "", event.source, event.version))
    return found


def test_the_first_run_records_a_baseline_and_queues_nothing(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every contact listed becomes a version seen; no event; one API call."""
    made = [fake.add("contacts", {"company_name": f"C{n}"}) for n in range(3)]
    code, out, _ = reconcile(capsys, "--resources", "contacts")
    assert code == 0, out
    assert row(out, "contacts") == [3, 0, 0, 0, 1]
    assert "baseline recorded" in out
    assert queued(redis_client) == []
    seen = Versions(redis_client).all(ADMINISTRATION, "Contact")
    assert seen == {c["id"]: (c["version"], False) for c in made}


def test_new_changed_and_gone_records_become_events_with_official_names(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """After the baseline: one new, one changed, one deleted contact → three events,
    the fetched record as entity, source reconcile; one GET and one POST."""
    kept, changed, deleted = (fake.add("contacts", {"version": 100}) for _ in range(3))
    reconcile(capsys, "--resources", "contacts")
    new = fake.add("contacts", {"company_name": "New"})
    fresh = fake.change("contacts", changed["id"], company_name="Changed")
    fake.remove("contacts", deleted["id"])
    code, out, _ = reconcile(capsys, "--resources", "contacts")
    assert code == 0, out
    assert row(out, "contacts") == [3, 1, 1, 1, 2]
    assert "queued 3 events" in out
    assert sorted(queued(redis_client)) == sorted(
        [
            ("contact_created", new["id"], "reconcile", new["version"]),
            ("contact_changed", changed["id"], "reconcile", fresh["version"]),
            ("contact_destroyed", deleted["id"], "reconcile", None),
        ]
    )
    (event_id,) = [
        i
        for i in Queue("hookbird", connection=redis_client).get_job_ids()
        if event_from_stored(i, stored_push(redis_client, i)).entity_id == changed["id"]
    ]
    event = event_from_stored(event_id, stored_push(redis_client, event_id))
    assert event.entity["company_name"] == "Changed"
    assert event.entity_type == "Contact"
    assert kept["id"] not in {entity for _, entity, _, _ in queued(redis_client)}
    assert [c.method for c in fake.requests[-2:]] == ["GET", "POST"]


def test_a_second_run_before_the_workers_queues_nothing_again(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same difference found twice is queued once (its dedup key), and not fetched
    again: one GET, no POST."""
    contact = fake.add("contacts", {"version": 100})
    reconcile(capsys, "--resources", "contacts")
    fake.change("contacts", contact["id"])
    reconcile(capsys, "--resources", "contacts")
    code, out, _ = reconcile(capsys, "--resources", "contacts")
    assert code == 0
    assert "queued 0 events" in out
    assert row(out, "contacts") == [1, 0, 1, 0, 1]
    assert len(queued(redis_client)) == 1


def test_invoices_of_earlier_years_are_listed_with_an_explicit_period(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invoice dated three years ago is reconciled: its change is found, it is not gone."""
    year = time.gmtime().tm_year
    old = fake.add("sales_invoices", {"invoice_date": f"{year - 3}-03-01", "version": 100})
    fake.add("sales_invoices", {"invoice_date": f"{year}-01-05", "version": 100})
    code, out, _ = reconcile(capsys, "--resources", "sales_invoices")
    assert row(out, "sales_invoices")[0] == 2
    fake.change("sales_invoices", old["id"], state="paid")
    code, out, _ = reconcile(capsys, "--resources", "sales_invoices")
    assert code == 0
    assert row(out, "sales_invoices") == [2, 0, 1, 0, 2]
    assert [(a, e) for a, e, _, _ in queued(redis_client)] == [("sales_invoice_updated", old["id"])]
    (listing,) = [c for c in fake.requests if c.method == "GET"][-1:]
    assert listing.params["filter"].startswith("period:19000101..")


def test_changed_records_are_fetched_100_per_call(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """250 changed contacts: one GET and three POSTs, no per-record GET."""
    made = [fake.add("contacts", {"version": 100}) for _ in range(250)]
    reconcile(capsys, "--resources", "contacts")
    for contact in made:
        fake.change("contacts", contact["id"])
    before = len(fake.requests)
    code, out, _ = reconcile(capsys, "--resources", "contacts")
    assert code == 0
    sent = fake.requests[before:]
    assert [c.method for c in sent] == ["GET", "POST", "POST", "POST"]
    assert [len(c.body["ids"]) for c in sent[1:]] == [100, 100, 50]
    assert row(out, "contacts") == [250, 0, 250, 0, 4]


def test_backfill_queues_every_record_and_reports_progress(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """--backfill on a first run: an event per record (created), progress as plain lines."""
    for n in range(5):
        fake.add("contacts", {"company_name": f"C{n}"})
    code, out, err = reconcile(capsys, "--resources", "contacts", "--backfill")
    assert code == 0, err
    assert "queued 5 events" in out
    assert {a for a, _, _, _ in queued(redis_client)} == {"contact_created"}
    assert "contacts: 5/5 records fetched" in err


def test_a_refused_token_exits_non_zero_and_says_what_to_do(
    env: None,
    fake: FakeMoneybird,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """401: exit 1, naming the credentials to check."""
    monkeypatch.setenv("MONEYBIRD_API_TOKEN", "not-the-right-token-0123456789")
    code, _, err = reconcile(capsys, "--resources", "contacts")
    assert code == 1
    assert "MONEYBIRD_API_TOKEN" in err


def test_unknown_resources_are_refused_with_the_list(
    env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resource without synchronization endpoints: exit 1, naming the ones there are."""
    code, _, err = reconcile(capsys, "--resources", "contacts,invoices")
    assert code == 1
    assert "not a synchronizable resource: invoices" in err
    assert "sales_invoices" in err


def test_keys_of_a_reconciled_event_are_those_of_a_push(
    env: None, fake: FakeMoneybird, redis_client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stored event is in the events index and has a dedup key, like a push."""
    contact = fake.add("contacts", {"version": 100})
    reconcile(capsys, "--resources", "contacts")
    fake.change("contacts", contact["id"])
    reconcile(capsys, "--resources", "contacts")
    (event_id,) = Queue("hookbird", connection=redis_client).get_job_ids()
    assert redis_client.zscore(keys.EVENTS_INDEX, event_id) is not None
    dedup = stored_push(redis_client, event_id)["dedup_key"]
    assert redis_client.get(dedup) == event_id.encode()


def test_the_progress_bar_redraws_in_place_on_a_terminal() -> None:
    """On a TTY: one line per resource, redrawn with \\r, ended when done."""
    import io

    from hookbird.commands.reconcile import Bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    bar = Bar(screen)
    bar("contacts", 100, 250)
    bar("contacts", 250, 250)
    drawn = screen.getvalue()
    assert drawn.count("\r") == 2
    assert drawn.endswith("250/250\n")
    assert "[############------------------] 100/250" in drawn


def test_a_record_pushed_while_the_listing_is_read_is_not_taken_for_gone(
    fake: FakeMoneybird, redis_client: redis.Redis
) -> None:
    """A contact created after the listing, whose push a worker handled meanwhile, is
    neither in the listing nor gone: only what was seen before the listing is compared."""
    from hookbird.moneybird import Client
    from hookbird.settings import Settings
    from workers.reconcile import Reconciler

    fake.add("contacts", {"version": 100})
    settings = Settings(moneybird_api_token=TOKEN, moneybird_api_url=fake.api_url)
    with Client(settings, redis=redis_client) as client:
        moneybird = client.administration(ADMINISTRATION)

        class PushedMeanwhile:
            """The administration, with a push handled just after the listing came back."""

            id = moneybird.id
            client = moneybird.client

            def __init__(self, pushing: bool) -> None:
                self.pushing = pushing

            def request(self, method: str, path: str, **kwargs: object) -> object:
                found = moneybird.request(method, path, **kwargs)
                if method == "GET" and self.pushing:
                    Versions(redis_client).claim(
                        administration_id=ADMINISTRATION,
                        entity_type="Contact",
                        entity_id="4960814078141999999",
                        version=200,
                        source="push",
                        destroyed=False,
                        state_key="hookbird:state:pushed-meanwhile",
                        ttl=60,
                    )
                return found

        def reconciler(pushing: bool) -> Reconciler:
            return Reconciler(
                redis_client,
                PushedMeanwhile(pushing),
                queue="hookbird",
                retention=60,
                dedup_ttl=60,
            )

        reconciler(pushing=False).run(["contacts"])  # the baseline
        (tally,) = reconciler(pushing=True).run(["contacts"])
    assert tally.gone == 0
    assert queued(redis_client) == []


def test_by_default_only_resources_an_installed_route_matches_are_reconciled(
    env: None,
    fake: FakeMoneybird,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker tests' handlers route contact events (and a paid-invoice state change,
    which no reconciled event is): contacts only."""
    monkeypatch.setenv("HOOKBIRD_HANDLERS", "tests.workers.sample_handlers")
    monkeypatch.setenv("HOOKBIRD_ENTRY_POINTS", "off")
    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))
    code, out, err = reconcile(capsys)
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()[1:-2]] == ["contacts"]
