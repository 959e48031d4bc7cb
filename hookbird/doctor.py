"""``hookbird doctor``'s checks: each looks at one thing and says what to do about it.

The judgements are pure functions over what was observed (Redis ``INFO`` fields, the
API's webhook list, a ``Date`` header), so they are tested without servers;
:func:`run_checks` gathers the observations from Redis, the plugins and Moneybird.
A :class:`Check` is ``ok``, ``warn`` or ``error``; the command exits 0, 1 or 2 for
the worst one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import redis

from hookbird.settings import Settings
from hookbird.subscriptions import Subscription, SubscriptionStore, token_digest

OK, WARN, ERROR = "ok", "warn", "error"
SEVERITY = {OK: 0, WARN: 1, ERROR: 2}
#: Redis versions older than this lack what RQ 2+ relies on.
MIN_REDIS = (6, 2)
QUEUE_BACKLOG = 1000


@dataclass(frozen=True)
class Check:
    """One finding: its status, what was seen, and (unless ok) what to do."""

    status: str
    what: str
    advice: str = ""


def exit_code(checks: Iterable[Check]) -> int:
    return max((SEVERITY[c.status] for c in checks), default=0)


# -- pure judgements --------------------------------------------------------------------


def judge_redis(info: Mapping[str, Any]) -> Iterator[Check]:
    """Version, AOF and eviction policy from ``INFO`` (works where CONFIG is disabled)."""
    version = str(info.get("redis_version", "?"))
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    if len(parts) == 2 and parts < MIN_REDIS:
        yield Check(WARN, f"Redis {version}", "upgrade to Redis 6.2 or newer")
    else:
        yield Check(OK, f"Redis {version}")
    if str(info.get("aof_enabled", "0")) == "1":
        yield Check(OK, "AOF on: acknowledged pushes survive a Redis restart")
    else:
        yield Check(
            ERROR,
            "AOF off: a Redis restart loses pushes already answered 200",
            "set `appendonly yes` and `appendfsync everysec` (deploy/redis.conf)",
        )
    policy = str(info.get("maxmemory_policy", "?"))
    if policy == "noeviction":
        yield Check(OK, "maxmemory-policy noeviction")
    else:
        yield Check(
            ERROR,
            f"maxmemory-policy {policy}: a full Redis silently evicts queued pushes",
            "set `maxmemory-policy noeviction`: hookbird then answers 503 and Moneybird retries",
        )


def judge_queue(queued: int, failed: int, workers: int, queue: str) -> Iterator[Check]:
    if workers == 0:
        yield Check(WARN, "no worker is running", "start `hookbird worker` (pushes wait till then)")
    else:
        yield Check(OK, f"{workers} worker(s) running")
    if queued > QUEUE_BACKLOG:
        yield Check(
            WARN,
            f"{queued} pushes waiting on queue {queue}",
            "add workers, or check `hookbird events list --status queued`",
        )
    else:
        yield Check(OK, f"{queued} pushes waiting on queue {queue}")
    if failed:
        yield Check(
            WARN,
            f"{failed} pushes in the dead letter",
            "`hookbird failed list` shows why; `hookbird failed requeue` runs them again",
        )
    else:
        yield Check(OK, "dead letter empty")


def judge_webhooks(
    administration_id: str,
    hooks: list[dict[str, Any]],
    stored: list[Subscription],
    env_token: str | None,
) -> Iterator[Check]:
    """Moneybird's webhook list against the subscription store, for one administration."""
    by_id = {str(h.get("id")): h for h in hooks}
    mine = {s.webhook_id: s for s in stored if s.administration_id == administration_id}
    env_digest = token_digest(env_token) if env_token else None
    for webhook_id, hook in by_id.items():
        where = f"webhook {webhook_id} ({hook.get('url', '?')})"
        token = hook.get("token")
        known = webhook_id in mine or (
            env_digest is not None and (not token or token_digest(str(token)) == env_digest)
        )
        if not known:
            yield Check(
                ERROR,
                f"{where} is not in the subscription store: its pushes get 401",
                f"store it: hookbird webhooks add --webhook-id {webhook_id} "
                f"--administration {administration_id} --token … (or re-register it)",
            )
            continue
        if hook.get("deactivated_at"):
            yield Check(
                WARN,
                f"{where} is deactivated in Moneybird",
                f"hookbird webhooks activate {webhook_id}",
            )
            continue
        status = hook.get("last_http_status")
        if status not in (None, 200, "200"):
            yield Check(
                WARN,
                f"{where}: Moneybird's last push got HTTP {status}",
                "Moneybird retries it; see the receiver's log and `hookbird webhooks list`",
            )
        else:
            yield Check(OK, f"{where} active, last push {status or 'none yet'}")
    for webhook_id in mine.keys() - by_id.keys():
        yield Check(
            ERROR,
            f"webhook {webhook_id} is in the store but not in Moneybird: no pushes will come",
            f"re-register it (hookbird webhooks register) or remove it: "
            f"hookbird webhooks delete {webhook_id} --local",
        )


def judge_clock(date_header: str | None, now: float, tolerance: int) -> Check:
    """Our clock against Moneybird's ``Date``: signatures older than the tolerance fail."""
    if not date_header:
        return Check(WARN, "clock not checked (no Date header from Moneybird)")
    try:
        theirs = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Check(WARN, f"clock not checked (unreadable Date {date_header!r})")
    skew = now - theirs
    text = f"clock {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} Moneybird's"
    if abs(skew) >= tolerance:
        return Check(
            ERROR,
            f"{text}: every signed push is refused",
            "sync the clock (NTP: timedatectl set-ntp true)",
        )
    if abs(skew) > max(5.0, tolerance / 10):
        return Check(WARN, f"{text}", "sync the clock with NTP before it breaks signature checks")
    return Check(OK, "clock in step with Moneybird's (within seconds)")


# -- gathering ------------------------------------------------------------------------


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
    subscriptions = SubscriptionStore(client).list()
    try:
        administrations = sorted({s.administration_id for s in subscriptions} | set(connected))
        if settings.moneybird_api_token:
            response = api.send("GET", "/administrations")
            found = response.json()
            names = [str(a.get("id")) for a in found if isinstance(a, dict)]
            yield Check(
                OK, f"Moneybird API reachable; the token sees {len(names)} administration(s)"
            )
            yield judge_clock(
                response.headers.get("date"), time.time(), settings.signature_tolerance
            )
            administrations = sorted(set(administrations) | set(names))
        for administration in connected:
            credential = store.get(administration) if store else None
            if credential is not None:
                scopes = " ".join(credential.scopes) or "unknown"
                yield Check(OK, f"administration {administration} connected (scopes: {scopes})")
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


def run_checks(settings: Settings) -> Iterator[Check]:
    """Every check, in the order an operator would look."""
    from hookbird.cli import safe_url

    if not settings.redis_url:
        yield Check(ERROR, "REDIS_URL is not set", "point it at the Redis hookbird uses")
        return
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
    )
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        yield Check(
            ERROR,
            f"Redis at {safe_url(settings.redis_url)} unreachable: {exc}",
            "start Redis or fix REDIS_URL (and its password)",
        )
        return
    try:
        yield Check(OK, f"Redis reachable at {safe_url(settings.redis_url)}")
        yield from check_redis(client, settings)
        yield from check_handlers(settings)
        yield from check_moneybird(client, settings)
    finally:
        client.close()
