"""``hookbird doctor``: one line per check with ✓/⚠/✗ and what to do; exit 0/1/2.

This module gathers what there is to see (Redis ``INFO``, RQ's registries, the handler
plugins, Moneybird's answers); the judgements are the pure functions in
:mod:`hookbird.doctor`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from typing import Any

import redis

from hookbird import metrics
from hookbird.commands.helpers import (
    add_command,
    ping_failure,
    redis_url_problem,
    root_cause,
    safe_url,
    unchecked_redis_client,
)
from hookbird.crypto import SecretKeyError
from hookbird.doctor import (
    ERROR,
    OK,
    SCOPE_PROBES,
    WARN,
    Check,
    SentinelView,
    exit_code,
    judge_clock,
    judge_queue,
    judge_redis,
    judge_replication,
    judge_scopes,
    judge_sentinels,
    judge_signature_policy,
    judge_signing_secrets,
    judge_watchdog,
    judge_webhooks,
)
from hookbird.redis_url import is_sentinel, parse_sentinel_url, sentinel_manager
from hookbird.settings import Settings
from hookbird.subscriptions import SubscriptionStore
from hookbird.wording import plural


def check_redis(client: redis.Redis, settings: Settings) -> Iterator[Check]:
    from rq import Queue, Worker

    info: dict[str, Any] = {}
    for section in ("server", "persistence", "memory"):
        info.update(client.info(section))
    yield from judge_redis(info)
    queue = Queue(settings.queue, connection=client)
    yield from judge_queue(
        queue.count, queue.failed_job_registry.count, Worker.count(connection=client), queue.name
    )


def check_watchdog(client: redis.Redis, settings: Settings) -> Iterator[Check]:
    """The webhook watchdog's last findings, when it runs and there is a webhook to watch."""
    from workers.watchdog import COUNTS_KEY, findings

    if (
        settings.webhook_watchdog_interval <= 0
        or not SubscriptionStore(client, settings.secret_key).webhook_ids()
    ):
        return
    counts = {str(k): int(v) for k, v in client.hgetall(COUNTS_KEY).items()}
    yield judge_watchdog(findings(client), counts)


def check_topology(client: redis.Redis, settings: Settings) -> Iterator[Check]:
    """Role, replicas, ``min-replicas-to-write`` and, on a Sentinel URL, the Sentinels."""
    assert settings.redis_url
    sentinel = is_sentinel(settings.redis_url)
    replication = client.info("replication")
    try:
        configured = client.config_get("min-replicas-to-write")
        to_write: int | None = int(str(configured["min-replicas-to-write"]))
    except (redis.exceptions.ResponseError, KeyError, ValueError):
        to_write = None  # CONFIG renamed or disabled (managed Redis)
    yield from judge_replication(replication, settings.min_replicas, to_write, sentinel)
    if not sentinel:
        return
    service = parse_sentinel_url(settings.redis_url).service
    server = client.info("server")
    views = []
    manager = sentinel_manager(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )
    try:
        for node in manager.sentinels:
            kwargs = node.connection_pool.connection_kwargs
            address = f"{kwargs['host']}:{kwargs['port']}"
            try:
                found = node.sentinel_get_master_addr_by_name(service)
            except redis.exceptions.RedisError as exc:
                views.append(SentinelView(address, error=root_cause(exc)))
                continue
            primary = None
            if isinstance(found, tuple):
                host = found[0].decode() if isinstance(found[0], bytes) else found[0]
                primary = f"{host}:{found[1]}"
            views.append(SentinelView(address, primary=primary))
    finally:
        manager.close()
    # The address the client last had from the Sentinels, the port as the server says.
    reached = getattr(client.connection_pool, "master_address", None) or ("?", 0)
    yield from judge_sentinels(service, views, f"{reached[0]}:{server['tcp_port']}")


def check_signing_secrets(client: redis.Redis, settings: Settings) -> Iterator[Check]:
    store = SubscriptionStore(client, settings.secret_key)
    signed, unreadable = 0, None
    try:
        signed = sum(s.signed for s in store.list())  # decrypts each, as the receiver will
    except SecretKeyError as exc:
        unreadable = str(exc)
    yield from judge_signing_secrets(
        signed, store.plaintext(), unreadable, has_key=bool(settings.secret_key)
    )
    unsigned = [s.webhook_id for s in store.list(decrypt=False) if not s.signed]
    yield from judge_signature_policy(
        unsigned,
        env_token=bool(settings.webhook_token),
        env_signed=bool(settings.webhook_secrets),
        required=settings.require_signature,
    )


def check_handlers(settings: Settings) -> Iterator[Check]:
    from workers.plugins import PluginError, load_router

    try:
        router = load_router(settings)
    except PluginError as exc:
        yield Check(ERROR, f"handlers do not import: {exc}", "fix the plugin, then retry")
        return
    names: dict[str, list[str]] = {}
    for route in router:
        names.setdefault(route.name, []).append(route.describe())
    if not names:
        yield Check(
            WARN,
            "no handlers installed: pushes are marked handled and dropped",
            "install a plugin (entry point `hookbird.handlers`) or set HOOKBIRD_HANDLERS",
        )
    for name, routes in names.items():
        yield Check(OK, f"handler {name} on {', '.join(routes)}")


def check_moneybird(client: redis.Redis, settings: Settings) -> Iterator[Check]:
    from hookbird.moneybird import Client, errors
    from hookbird.moneybird.credentials import CredentialError, CredentialStore

    store = CredentialStore(client, settings.secret_key) if settings.secret_key else None
    connected = store.administrations() if store else []
    if not settings.moneybird_api_token and not connected:
        yield Check(
            WARN,
            "no Moneybird credentials: handlers cannot call the API, webhooks not compared",
            "set MONEYBIRD_API_TOKEN or connect with `hookbird oauth url`",
        )
        return
    api = Client(settings, redis=client, on_budget="raise", retries=0)
    subscriptions = SubscriptionStore(client).list(decrypt=False)
    try:
        administrations = sorted({s.administration_id for s in subscriptions} | set(connected))
        if settings.moneybird_api_token:
            response = api.send("GET", "/administrations")
            found = response.json()
            names = [str(a.get("id")) for a in found if isinstance(a, dict)]
            yield Check(
                OK,
                f"Moneybird API reachable; the token sees {plural(len(names), 'administration')}",
            )
            yield judge_clock(
                response.headers.get("date"), time.time(), settings.signature_tolerance
            )
            administrations = sorted(set(administrations) | set(names))
        for administration in connected:
            credential = store.get(administration) if store else None
            if credential is not None and credential.needs_reauth:
                yield Check(
                    ERROR,
                    f"administration {administration}: Moneybird refused its OAuth grant "
                    f"({credential.needs_reauth}); its jobs fail until it is authorised again",
                    "hookbird oauth url, then hookbird oauth exchange",
                )
            elif credential is not None:
                scopes = " ".join(credential.scopes) or "unknown"
                yield Check(OK, f"administration {administration} connected (scopes: {scopes})")
        if settings.moneybird_api_token and administrations:
            yield judge_scopes(probe_scopes(api, administrations[0]))
        for administration in administrations:
            try:
                hooks = list(api.administration(administration).webhooks.list())
            except errors.Forbidden:
                yield Check(
                    WARN,
                    f"administration {administration}: no `settings` scope, webhooks not checked",
                    "give the token the settings scope to let hookbird manage webhooks",
                )
                continue
            metrics.record_webhooks(client, hooks)  # for hookbird_webhook_* on /metrics
            yield from judge_webhooks(administration, hooks, subscriptions, settings.webhook_token)
    except errors.Unauthorized as exc:
        yield Check(ERROR, f"Moneybird refused the credentials: {exc}", "check MONEYBIRD_API_TOKEN")
    except errors.RateLimited:
        yield Check(WARN, "Moneybird rate budget spent: API not checked", "run doctor again later")
    except (errors.MoneybirdError, CredentialError) as exc:
        yield Check(
            ERROR,
            f"Moneybird API: {exc}",
            f"check MONEYBIRD_API_URL ({settings.moneybird_api_url})",
        )
    finally:
        api.close()


def probe_scopes(api: Any, administration: str) -> dict[str, bool | None]:
    """One small read per scope (up to five requests of the rate budget)."""
    from hookbird.moneybird import errors

    found: dict[str, bool | None] = {}
    for scope, path in SCOPE_PROBES.items():
        try:
            api.send(
                "GET",
                f"/{administration}/{path}",
                params={"per_page": 1},
                administration_id=administration,
            )
            found[scope] = True
        except errors.Forbidden:
            found[scope] = False
        except errors.PermanentError:
            found[scope] = None
    return found


def run_checks(settings: Settings) -> Iterator[Check]:
    """Every check, in the order an operator would look."""
    if not settings.redis_url:
        yield Check(
            ERROR,
            "REDIS_URL is not set",
            "point it at the Redis hookbird uses, or run doctor where `hookbird dev` runs",
        )
        return
    problem = redis_url_problem(settings.redis_url)
    if problem:
        yield Check(ERROR, problem, "fix REDIS_URL")
        return
    client = unchecked_redis_client(settings)
    unreachable = ping_failure(client)
    if unreachable:
        client.close()
        yield Check(
            ERROR,
            f"Redis at {safe_url(settings.redis_url)} unreachable: {unreachable}",
            "start Redis or fix REDIS_URL (and its password)",
        )
        return
    try:
        yield Check(OK, f"Redis reachable at {safe_url(settings.redis_url)}")
        yield from check_redis(client, settings)
        yield from check_topology(client, settings)
        yield from check_signing_secrets(client, settings)
        yield from check_handlers(settings)
        yield from check_moneybird(client, settings)
        yield from check_watchdog(client, settings)
    finally:
        client.close()


MARKS = {OK: "✓", WARN: "⚠", ERROR: "✗"}
ASCII = {OK: "ok  ", WARN: "warn", ERROR: "FAIL"}


def line(check: Check, marks: dict[str, str]) -> str:
    advice = f"  → {check.advice}" if check.advice else ""
    return f"{marks[check.status]} {check.what}{advice}"


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    encoding = (sys.stdout.encoding or "").lower()
    marks = ASCII if args.ascii or "utf" not in encoding else MARKS
    checks = []
    for check in run_checks(settings):
        checks.append(check)
        if args.quiet and check.status == OK:
            continue
        print(line(check, marks), flush=True)
    code = exit_code(checks)
    warned = sum(c.status == WARN for c in checks)
    failed = sum(c.status == ERROR for c in checks)
    print(f"{plural(len(checks), 'check')}: {plural(failed, 'error')}, {plural(warned, 'warning')}")
    return code


def register(commands: Any) -> None:
    doctor = add_command(
        commands,
        "doctor",
        "Check Redis, the queue, stored signing secrets, the handlers, Moneybird "
        "credentials, webhooks and the clock; exit 0 (ok), 1 (warnings) or 2 (errors).",
        "REDIS_URL=redis://localhost:6379/0 hookbird doctor",
        cmd_doctor,
    )
    doctor.add_argument("--quiet", action="store_true", help="print only warnings and errors")
    doctor.add_argument("--ascii", action="store_true", help="ok/warn/FAIL instead of ✓/⚠/✗")
