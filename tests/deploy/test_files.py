"""The files in deploy/ hold what matters, and validate wherever a validator runs here.

No Docker engine or Kubernetes cluster here: manifests are checked against the
Kubernetes schemas bundled in the kubernetes-validate package (offline), unit files
with `systemd-analyze verify`, the Redis config by starting a real redis-server on it.
"""

from __future__ import annotations

import copy
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml

from hookbird.cli import build_parser
from hookbird.redis_server import find_redis_server, free_port
from hookbird.settings import FIELDS

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
#: The oldest Kubernetes minor still commonly run; newer ones accept these manifests too.
K8S_VERSIONS = ("1.29.0", "1.33.0")
DEFAULT_GRACE = float(next(f.default for f in FIELDS if f.env == "HOOKBIRD_SHUTDOWN_GRACE") or 0)
IMAGE_UID = 10001


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                found.append((path.name, doc))
    return found


def by_kind(kind: str, name: str) -> dict[str, Any]:
    for _, doc in manifests():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name}")


def hookbird_command_is_real(argv: list[str]) -> None:
    """`hookbird X …` parses with the real CLI parser (no typo'd commands or flags)."""
    assert argv[0].endswith("hookbird"), argv
    build_parser().parse_args(argv[1:])


# -- Kubernetes -------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_schemas(version: str) -> None:
    """Every manifest validates strictly (unknown fields are errors) against the API schema."""
    docs = manifests()
    assert {d["kind"] for _, d in docs} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Secret",
    }
    for name, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{name} {doc['kind']}: {exc.message}") from exc


def test_the_validator_catches_a_misspelt_field() -> None:
    """The schema check is not a no-op: a typo in a probe's name fails it."""
    web = copy.deepcopy(by_kind("Deployment", "hookbird-web"))
    container = web["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(web, K8S_VERSIONS[0], strict=True)


def test_web_probes_service_budget_and_autoscaler_fit_together() -> None:
    """Readiness on /readyz, liveness on /healthz; Service, PDB and HPA point at the web pods."""
    web = by_kind("Deployment", "hookbird-web")
    pod = web["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    hookbird_command_is_real(container["command"])
    labels = pod["metadata"]["labels"]
    assert web["spec"]["selector"]["matchLabels"] == labels
    service = by_kind("Service", "hookbird-web")
    assert service["spec"]["selector"] == labels
    assert (
        by_kind("PodDisruptionBudget", "hookbird-web")["spec"]["selector"]["matchLabels"] == labels
    )
    hpa = by_kind("HorizontalPodAutoscaler", "hookbird-web")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hookbird-web",
    }
    assert hpa["spec"]["minReplicas"] >= 2


def test_worker_grace_outlasts_the_shutdown_grace() -> None:
    """terminationGracePeriodSeconds leaves the worker time to put its push back."""
    config = by_kind("ConfigMap", "hookbird-config")["data"]
    grace = float(config["HOOKBIRD_SHUTDOWN_GRACE"])
    worker = by_kind("Deployment", "hookbird-worker")
    spec = worker["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= grace + 5
    hookbird_command_is_real(spec["containers"][0]["command"])
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert by_kind("PodDisruptionBudget", "hookbird-worker")["spec"]["selector"]["matchLabels"] == (
        labels
    )


def test_pods_run_unprivileged_as_the_image_user() -> None:
    """Non-root (the Dockerfile's uid), no privilege escalation, read-only root, no caps."""
    for name in ("hookbird-web", "hookbird-worker"):
        spec = by_kind("Deployment", name)["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == IMAGE_UID
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"]["drop"] == ["ALL"]
            refs = [next(iter(e.values()))["name"] for e in container["envFrom"]]
            assert refs == ["hookbird-config", "hookbird-secrets"]


def test_every_empty_dir_has_a_size_limit() -> None:
    """A pod filling its emptyDir is evicted instead of filling the node's disk."""
    found = 0
    for name in ("hookbird-web", "hookbird-worker"):
        for volume in by_kind("Deployment", name)["spec"]["template"]["spec"]["volumes"]:
            if "emptyDir" in volume:
                found += 1
                assert volume["emptyDir"].get("sizeLimit"), f"{name}: {volume['name']}"
    assert found


def policies() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"] for _, d in manifests() if d["kind"] == "NetworkPolicy"
    }


def test_network_policies_deny_by_default_and_keep_redis_to_hookbird() -> None:
    """One policy drops all traffic in and out of every pod; Redis takes 6379 from
    hookbird's pods only; the web pods take their port from outside the namespace (the
    ingress controller, Prometheus) and nothing else does."""
    found = policies()
    deny = found["default-deny"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    hookbird = {"app.kubernetes.io/name": "hookbird"}
    web_labels = by_kind("Deployment", "hookbird-web")["spec"]["template"]["metadata"]["labels"]
    worker = by_kind("Deployment", "hookbird-worker")["spec"]["template"]["metadata"]["labels"]
    for labels in (web_labels, worker):
        assert hookbird.items() <= labels.items()
    allowed_in: dict[str, list[dict[str, Any]]] = {}
    for spec in found.values():
        for rule in spec.get("ingress", []):
            target = spec["podSelector"]["matchLabels"].get("app.kubernetes.io/name")
            allowed_in.setdefault(target, []).append(rule)
    assert set(allowed_in) == {"redis", "hookbird"}
    for rule in allowed_in["redis"]:
        assert rule["from"] == [{"podSelector": {"matchLabels": hookbird}}]
        assert rule["ports"] == [{"port": 6379, "protocol": "TCP"}]
    for rule in allowed_in["hookbird"]:
        assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
        assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    assert found["hookbird-web-from-ingress"]["podSelector"]["matchLabels"] == web_labels
    assert (
        by_kind("Deployment", "hookbird-web")["spec"]["template"]["spec"]["containers"][0]["ports"][
            0
        ]["containerPort"]
        == 8000
    )
    egress = found["hookbird-worker-to-moneybird"]
    assert egress["podSelector"]["matchLabels"] == worker
    assert [p["port"] for rule in egress["egress"] for p in rule["ports"]] == [443]


def test_config_and_secret_examples_use_real_settings_and_placeholders() -> None:
    """Every key is a hookbird setting; every secret value is an obvious placeholder."""
    known = {f.env for f in FIELDS}
    config = by_kind("ConfigMap", "hookbird-config")["data"]
    secret = by_kind("Secret", "hookbird-secrets")["stringData"]
    assert set(config) <= known
    assert set(secret) <= known
    for value in secret.values():
        assert "change-me" in value


def test_ingress_exposes_only_the_push_endpoint_and_kustomization_is_complete() -> None:
    """/metrics and /console/ are not reachable through the Ingress; kustomize lists files
    that exist."""
    ingress = by_kind("Ingress", "hookbird-web")
    paths = [p for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert [(p["path"], p["pathType"]) for p in paths] == [("/webhooks/moneybird", "Exact")]
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    assert "secret.example.yaml" not in kustomization["resources"]


# -- Docker ---------------------------------------------------------------------------


def stages(dockerfile: str) -> list[list[str]]:
    lines = re.sub(r"\\\n", " ", dockerfile).splitlines()
    result: list[list[str]] = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(text)
    return result


def test_dockerfile_is_multi_stage_slim_and_non_root() -> None:
    """Build stage installs; the final stage copies the venv only, runs as uid 10001."""
    text = (DEPLOY / "Dockerfile").read_text()
    assert "python:3.11-slim" in text
    built = stages(text)
    assert len(built) >= 2
    final = built[-1]
    joined = "\n".join(final)
    assert "COPY --from=build /opt/hookbird /opt/hookbird" in joined
    for tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert tool not in joined, tool
    user = [line for line in final if line.startswith("USER ")]
    assert user == [f"USER {IMAGE_UID}:{IMAGE_UID}"]
    cmd = next(line for line in final if line.startswith("CMD "))
    hookbird_command_is_real(yaml.safe_load(cmd[4:]))
    for line in (line for stage in built for line in stage):
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


# -- Compose and Redis --------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return loaded


def test_compose_runs_redis_web_two_workers_and_a_protected_dashboard() -> None:
    """Redis with redis.conf and a password; web checked on /readyz and not published;
    two workers with a stop grace above the shutdown grace; dashboard on localhost with auth."""
    services = compose()["services"]
    assert set(services) >= {"redis", "web", "worker", "dashboard", "proxy"}
    redis_cmd = " ".join(services["redis"]["command"])
    assert "/usr/local/etc/redis/redis.conf" in redis_cmd
    assert "--requirepass" not in redis_cmd  # argv is world-readable: see the next test
    assert "./redis.conf:/usr/local/etc/redis/redis.conf:ro" in services["redis"]["volumes"]
    web = services["web"]
    assert "/readyz" in " ".join(web["healthcheck"]["test"])
    assert "ports" not in web  # only the proxy is published
    hookbird_command_is_real(web["command"])
    assert "REDIS_PASSWORD" in web["environment"]["REDIS_URL"]
    worker = services["worker"]
    hookbird_command_is_real(worker["command"])
    assert worker["deploy"]["replicas"] == 2
    assert float(worker["stop_grace_period"].rstrip("s")) > float(
        worker["environment"]["HOOKBIRD_SHUTDOWN_GRACE"]
    )
    dashboard = services["dashboard"]
    assert all(port.startswith("127.0.0.1:") for port in dashboard["ports"])
    assert ":?" in dashboard["environment"]["RQ_DASHBOARD_PASSWORD"]  # refuses to start without
    for name in ("web", "worker", "dashboard"):
        assert services[name]["read_only"] is True
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).is_file(), source


def test_compose_redis_is_locked_down() -> None:
    """Redis runs as the image's redis user (so its entrypoint skips the root-only steps),
    without capabilities or privilege gain, on a read-only root with /data and /tmp
    writable; the image names a tag that README.md says how to pin."""
    redis_service = compose()["services"]["redis"]
    assert redis_service["user"] == "999:999"
    assert redis_service["cap_drop"] == ["ALL"]
    assert redis_service["security_opt"] == ["no-new-privileges:true"]
    assert redis_service["read_only"] is True
    assert redis_service["tmpfs"] == ["/tmp"]
    assert "redis-data:/data" in redis_service["volumes"]
    assert "@sha256:" in (DEPLOY / "README.md").read_text()


def test_compose_redis_command_takes_the_password_from_the_environment(tmp_path: Path) -> None:
    """The redis service's own command, run here with a real redis-server: the password
    from REDIS_PASSWORD is required, and it is on no process's command line."""
    password = "compose-test-password-0123456789"
    command = compose()["services"]["redis"]["command"]
    assert command[:2] == ["sh", "-c"]
    script = (
        command[2]
        .replace("$$", "$")  # Compose's escape for a literal $
        .replace("/tmp/", f"{tmp_path}/")  # first: the checkout itself may be under /tmp
        .replace("/usr/local/etc/redis/redis.conf", str(DEPLOY / "redis.conf"))
    )
    port = free_port()
    server = Path(find_redis_server())
    args = ["--dir", str(tmp_path), "--bind", "127.0.0.1", "--port", str(port)]
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", script, *command[3:], *args],
            env={"PATH": f"{server.parent}:/usr/bin:/bin", "REDIS_PASSWORD": password},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        client = redis.Redis(port=port, password=password, socket_timeout=2)
        for _ in range(250):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None:
                    raise AssertionError(f"redis refused: {log.read_text()}") from None
                time.sleep(0.02)
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, socket_timeout=2).ping()
        assert proc.pid == int(client.info("server")["process_id"])  # exec'd, no shell left
        assert password.encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert (tmp_path / "requirepass.conf").stat().st_mode & 0o077 == 0
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


def test_caddy_forwards_only_the_push_endpoint() -> None:
    """The public proxy forwards POST /webhooks/moneybird and answers 404 to the rest
    (/metrics, /console/)."""
    text = (DEPLOY / "Caddyfile").read_text()
    assert "path /webhooks/moneybird" in text
    assert "method POST" in text
    assert text.count("reverse_proxy") == 1
    assert "respond 404" in text


def test_shipped_redis_conf_gives_aof_everysec_and_noeviction(tmp_path: Path) -> None:
    """A real redis-server started on deploy/redis.conf reports the settings hookbird needs."""
    port = free_port()
    command = [
        find_redis_server(),
        str(DEPLOY / "redis.conf"),
        "--dir",
        str(tmp_path),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--requirepass",
        "test-password",
        "--daemonize",
        "no",
    ]
    log = tmp_path / "redis.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(
            port=port, password="test-password", socket_timeout=2, decode_responses=True
        )
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if proc.poll() is not None:
                    raise AssertionError(f"redis.conf refused: {log.read_text()}") from None
                time.sleep(0.02)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(port=port, socket_timeout=2).ping()
        client.close()
    finally:
        proc.terminate()
        proc.wait(10)


# -- systemd ------------------------------------------------------------------------------


UNITS = ("hookbird-web.service", "hookbird-worker@.service")


def unit_values(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@pytest.mark.parametrize("name", UNITS)
def test_units_are_hardened_and_run_real_commands(name: str) -> None:
    """Dynamic user, read-only system, no new privileges …; ExecStart is a real command."""
    values = unit_values(name)
    for key, expected in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert values[key] == [expected], key
    hookbird_command_is_real(shlex.split(values["ExecStart"][0]))
    if name.startswith("hookbird-worker"):
        assert float(values["TimeoutStopSec"][0]) > DEFAULT_GRACE


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian: apt-get install systemd; .ci/run does)",
)


def verify_unit(name: str, text: str, folder: Path) -> list[str]:
    """Lines `systemd-analyze verify` prints about this unit (ExecStart: our `hookbird`)."""
    hookbird = shutil.which("hookbird", path=str(Path(sys.executable).parent)) or shutil.which(
        "hookbird"
    )
    assert hookbird, "hookbird is not installed"
    unit = folder / name.replace("@.", "@1.")
    unit.write_text(text.replace("/opt/hookbird/bin/hookbird", hookbird))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in (result.stdout + result.stderr).splitlines() if str(folder) in line]


@needs_systemd_analyze
@pytest.mark.parametrize("name", UNITS)
def test_units_pass_systemd_analyze_verify(name: str, tmp_path: Path) -> None:
    """`systemd-analyze verify` finds no unknown key or bad value in the shipped units."""
    assert verify_unit(name, (DEPLOY / "systemd" / name).read_text(), tmp_path) == []


@needs_systemd_analyze
def test_systemd_analyze_reports_a_bad_key(tmp_path: Path) -> None:
    """The verify check is not a no-op: an unknown key and a bad value are reported."""
    text = (DEPLOY / "systemd" / UNITS[0]).read_text()
    text = text.replace("ProtectHome=yes", "ProtectHome=yess\nProtectHomme=yes")
    assert len(verify_unit(UNITS[0], text, tmp_path)) == 2
