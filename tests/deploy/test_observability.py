"""deploy/prometheus/alerts.yml and deploy/grafana/hookbird.json: valid, and built only on
metrics hookbird exports.

``promtool`` comes from Debian's ``prometheus`` package (.ci/run installs it); without
it those checks are skipped. Which metrics hookbird exports is read from a real
``/metrics`` after real work: pushes handled and dead-lettered by a worker process,
a Moneybird call, a webhook's state, a ``hookbird reconcile``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hookbird import metrics
from hookbird.moneybird import Client
from hookbird.settings import Settings
from receiver.app import create_app
from tests.fake_moneybird import ADMINISTRATION, TOKEN, FakeMoneybird
from tests.support import serve_in_thread
from tests.workers.conftest import TOKEN as WEBHOOK_TOKEN
from tests.workers.conftest import Pusher, Workers, run_cli, wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "hookbird.json"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian: apt-get install prometheus)"
)
METRIC = re.compile(r"\bhookbird_[a-z0-9_]+")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def rule_exprs() -> list[str]:
    """Every alert expression in alerts.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [str(rule["expr"]) for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    def walk(panels: list[dict[str, object]]) -> Iterator[str]:
        for panel in panels:
            for target in panel.get("targets", []):  # type: ignore[attr-defined]
                yield target["expr"]
            yield from walk(panel.get("panels", []))  # type: ignore[arg-type]

    return list(walk(json.loads(DASHBOARD.read_text())["panels"]))


@needs_promtool
def test_the_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", RULES)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


@needs_promtool
def test_each_alert_fires_when_it_should_and_not_before() -> None:
    """alerts.test.yml: promtool evaluates every rule on synthetic series."""
    result = promtool("test", "rules", RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_check_flags_a_broken_rule(tmp_path: Path) -> None:
    """The check is not a no-op: an unbalanced parenthesis fails it."""
    broken = tmp_path / "alerts.yml"
    broken.write_text(
        RULES.read_text().replace("(hookbird_workers_alive)", "(hookbird_workers_alive")
    )
    assert promtool("check", "rules", broken).returncode != 0


@needs_promtool
def test_the_dashboards_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each panel's query, with Grafana's $__rate_interval filled in, parses as PromQL."""
    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e.replace("$__rate_interval", "5m")}
                    for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_uses_its_datasource_variable_everywhere() -> None:
    """Imported into any Grafana, every panel asks the Prometheus picked in the variable."""
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = dashboard["templating"]["list"]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]


def exported_after_real_work(redis_url: str, redis_client: redis.Redis, logs: Path) -> set[str]:
    """The sample names of a real /metrics once a worker process handled and dead-lettered
    pushes, the Moneybird client made a call, a webhook's state was read, and ``hookbird
    reconcile`` ran."""
    redis_client.set("test:dead:billing", 1)
    settings = Settings(redis_url=redis_url, webhook_token=WEBHOOK_TOKEN)
    group = Workers(redis_url, logs)
    with serve_in_thread(create_app(settings)) as base:
        push = Pusher(base)
        try:
            group.start()
            push(entity_id="1")
            push(action="sales_invoice_state_changed_to_paid", entity_type="SalesInvoice")
            with FakeMoneybird().serve() as fake:
                api = replace(
                    Settings(redis_url=redis_url, moneybird_api_token=TOKEN),
                    moneybird_api_url=fake.api_url,
                )
                with Client.for_worker(api, redis_client) as client:
                    client.administration(ADMINISTRATION).contacts.sync()
                reconciled = run_cli(
                    redis_url,
                    "reconcile",
                    "--administration",
                    ADMINISTRATION,
                    "--resources",
                    "contacts",
                    MONEYBIRD_API_TOKEN=TOKEN,
                    MONEYBIRD_API_URL=fake.api_url,
                )
                assert reconciled.returncode == 0, reconciled.stderr
            metrics.flush(redis_client)
            metrics.record_webhooks(redis_client, [{"id": "41", "last_http_status": 200}])

            def names() -> set[str] | None:
                text = push.http.get(f"{base}/metrics").text
                found = {
                    sample.name
                    for family in text_string_to_metric_families(text)
                    for sample in family.samples
                }
                done = 'outcome="dead_lettered"' in text and 'outcome="handled"' in text
                return found if done else None

            found: set[str] = wait_for(names, timeout=60, message="the work on /metrics", every=0.3)
            return found
        finally:
            push.http.close()
            group.stop_all()


@pytest.mark.slow
def test_every_metric_the_dashboard_and_the_rules_name_is_exported_and_documented(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    named = {m for expr in [*rule_exprs(), *dashboard_exprs()] for m in METRIC.findall(expr)}
    assert len(rule_exprs()) == 9
    assert "hookbird_handler_duration_seconds_bucket" in named
    exported = exported_after_real_work(redis_url, redis_client, tmp_path)
    assert named - exported == set()
    documented = set(re.findall(r"^\| `(hookbird_[a-z0-9_]+)`", OPERATIONS.read_text(), re.M))
    families = {re.sub(r"_(bucket|sum|count)$", "", name) for name in exported}
    assert families - documented == set()  # docs/operations.md#metrics has every one
