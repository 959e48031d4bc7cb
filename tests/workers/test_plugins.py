"""Plugin discovery (entry points, HOOKBIRD_HANDLERS), failing plugins, the example plugin."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hookbird.settings import Settings
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.support import serve_in_thread
from tests.workers.conftest import ROOT, Pusher, Workers, run_cli, wait_for
from workers.plugins import PluginError, load_router
from workers.store import state_key

EXAMPLE = ROOT / "examples" / "hookbird-example"


@pytest.fixture(scope="session")
def example_plugin() -> None:
    """The example plugin installed in this environment (scripts/bootstrap does it; else here)."""
    found = [e for e in importlib.metadata.entry_points(group="hookbird.handlers")]
    if not any(e.name == "example" for e in found):
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(EXAMPLE)],
            check=True,
        )
        importlib.invalidate_caches()


def test_handlers_module_setting_is_loaded() -> None:
    """HOOKBIRD_HANDLERS modules contribute their router, labelled with where it came from."""
    router = load_router(Settings(handlers=("tests.workers.sample_handlers",), entry_points=False))
    names = {r.name for r in router}
    assert "tests.workers.sample_handlers:sync_contact" in names
    assert router.sources["tests.workers.sample_handlers:sync_contact"].startswith(
        "HOOKBIRD_HANDLERS module"
    )


def test_entry_point_plugin_is_discovered(example_plugin: None) -> None:
    """An installed package's ``hookbird.handlers`` entry point is found without configuration."""
    router = load_router(Settings(entry_points=True))
    assert "hookbird_example:upsert_contact" in {r.name for r in router}
    assert "hookbird-example" in router.sources["hookbird_example:upsert_contact"]


def test_entry_points_can_be_chosen_by_name(example_plugin: None) -> None:
    """HOOKBIRD_ENTRY_POINTS=example loads that plugin and no other; an unknown name stops."""
    chosen = Settings.from_env({"HOOKBIRD_ENTRY_POINTS": "example"}, dotenv=None)
    assert chosen.entry_points == ("example",)
    sources = set(load_router(chosen).sources.values())
    assert sources
    assert all("hookbird-example" in source for source in sources)
    assert Settings.from_env({"HOOKBIRD_ENTRY_POINTS": "off"}, dotenv=None).entry_points is False
    with pytest.raises(PluginError, match=r"no-such-plugin.*installed hookbird\.handlers"):
        load_router(Settings(entry_points=("no-such-plugin",)))


def test_the_suite_loads_no_plugin_it_did_not_ask_for() -> None:
    """A plugin a developer installed in .venv never joins the suite's workers and devs."""
    assert os.environ["HOOKBIRD_ENTRY_POINTS"] == "off"


def test_a_plugin_that_fails_to_import_is_named() -> None:
    """A broken handler module raises PluginError naming it, never a silent skip."""
    with pytest.raises(PluginError, match=r"tests\.workers\.broken_plugin"):
        load_router(Settings(handlers=("tests.workers.broken_plugin",), entry_points=False))


def test_worker_refuses_to_start_with_a_broken_plugin(redis_url: str) -> None:
    """`hookbird worker` exits non-zero at once, and its message names the plugin."""
    result = run_cli(redis_url, "worker", HOOKBIRD_HANDLERS="tests.workers.broken_plugin")
    assert result.returncode == 1
    assert "tests.workers.broken_plugin" in result.stderr
    assert "hookbird_does_not_exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_handlers_command_shows_which_handlers_a_push_reaches(redis_url: str) -> None:
    """`hookbird handlers --event` lists the handlers a push would reach, in order."""
    result = run_cli(
        redis_url, "handlers", "--event", "contact_changed", "--entity-type", "Contact"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "sync_contact" in lines[1]
    assert "latest_contact (latest only)" in lines[2]
    listing = run_cli(redis_url, "handlers")
    assert re.search(r"mark_paid +on sales_invoice_state_changed_to_paid\n", listing.stdout)


@pytest.fixture
def summary_sink() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A small HTTP endpoint standing in for the team's own system."""
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    async def collect(request: Request) -> JSONResponse:
        with lock:
            received.append(
                {"body": await request.json(), "key": request.headers.get("idempotency-key")}
            )
        return JSONResponse({"ok": True})

    with serve_in_thread(Starlette(routes=[Route("/paid", collect, methods=["POST"])])) as base:
        yield f"{base}/paid", received


@pytest.mark.slow
def test_example_plugin_end_to_end(
    example_plugin: None,
    push: Pusher,
    workers: Workers,
    redis_client: redis.Redis,
    summary_sink: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """The example plugin, found by its entry point: a paid invoice is fetched from (fake)
    Moneybird and summarised to a URL; contacts land in SQLite, stale versions skipped."""
    url, received = summary_sink
    database = tmp_path / "contacts.sqlite3"
    with FakeMoneybird().serve() as fake:
        invoice = fake.add(
            "sales_invoices",
            {"invoice_id": "2026-0042", "state": "paid", "total_price_incl_tax": "121.0"},
        )
        workers.start(
            HOOKBIRD_HANDLERS="",
            HOOKBIRD_ENTRY_POINTS="example",
            MONEYBIRD_API_TOKEN=TOKEN,
            MONEYBIRD_API_URL=fake.api_url,
            HOOKBIRD_EXAMPLE_SUMMARY_URL=url,
            HOOKBIRD_EXAMPLE_DB=str(database),
        )
        paid = push(
            administration_id=ADMINISTRATION,
            action="sales_invoice_state_changed_to_paid",
            entity_type="SalesInvoice",
            entity_id=invoice["id"],
            entity=invoice,
        )
        contact = {"id": "900", "company_name": "Bakkerij Jansen", "version": 20}
        created = push(action="contact_created", entity_id="900", entity=contact)
        done = [paid, created]
        wait_for(
            lambda: all(redis_client.hget(state_key(e), "status") == b"succeeded" for e in done),
            timeout=20,
            message="both pushes",
        )
        stale = push(action="contact_changed", entity_id="900", entity={**contact, "version": 10})
        wait_for(
            lambda: redis_client.hget(state_key(stale), "status") == b"succeeded",
            message="the stale push",
        )
        assert fake.count("GET", f"sales_invoices/{invoice['id']}") == 1
    (summary,) = received
    assert summary["body"]["invoice_id"] == "2026-0042"
    assert summary["body"]["total"] == "121.0"
    assert summary["key"]
    assert summary["key"].startswith("hookbird-")
    with closing(sqlite3.connect(database)) as db:
        rows = db.execute("SELECT id, company_name, version FROM contacts").fetchall()
    assert rows == [("900", "Bakkerij Jansen", 20)]
    outcomes = json.loads(redis_client.hget(state_key(stale), "handlers") or b"{}")
    assert outcomes["hookbird_example:upsert_contact"]["status"] == "skipped"
