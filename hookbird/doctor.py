"""``hookbird doctor``'s checks: each looks at one thing and says what to do about it.

The judgements are pure functions over what was observed (Redis ``INFO`` fields, the
API's webhook list, a ``Date`` header), so they are tested without servers;
:mod:`hookbird.commands.doctor` gathers the observations from Redis, the plugins and
Moneybird.
A :class:`Check` is ``ok``, ``warn`` or ``error``; the command exits 0, 1 or 2 for
the worst one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from hookbird.subscriptions import Subscription, token_digest
from hookbird.wording import plural

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
        yield Check(OK, f"{plural(workers, 'worker')} running")
    if queued > QUEUE_BACKLOG:
        yield Check(
            WARN,
            f"{plural(queued, 'push', 'pushes')} waiting on queue {queue}",
            "add workers, or check `hookbird events list --status queued`",
        )
    else:
        yield Check(OK, f"{plural(queued, 'push', 'pushes')} waiting on queue {queue}")
    if failed:
        yield Check(
            WARN,
            f"{plural(failed, 'push', 'pushes')} in the dead letter",
            "`hookbird failed list` shows why; `hookbird failed requeue` runs them again",
        )
    else:
        yield Check(OK, "dead letter empty")


def judge_webhooks(
    administration_id: str,
    hooks: Sequence[Mapping[str, Any]],
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
        reconcile = f"hookbird reconcile --administration {administration_id}"
        if hook.get("deactivated_at"):
            yield Check(
                ERROR,
                f"{where} is deactivated in Moneybird: no pushes come",
                f"hookbird webhooks activate {webhook_id}, then {reconcile} for what was "
                "missed (HOOKBIRD_WEBHOOK_REACTIVATE=1 lets the workers do both)",
            )
            continue
        status = hook.get("last_http_status")
        if status not in (None, 200, "200"):
            yield Check(
                ERROR,
                f"{where}: Moneybird's last push got HTTP {status}",
                "Moneybird retries a push 10 times, then gives up: see the receiver's log, "
                f"and once pushes are answered 200 again, {reconcile}",
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


def judge_watchdog(findings: Mapping[str, Mapping[str, Any]], counts: Mapping[str, int]) -> Check:
    """What the workers' webhook watchdog found at its last checks (``workers.watchdog``)."""
    if findings:
        listed = "; ".join(
            f"webhook {webhook_id} (administration {f.get('administration_id')}) "
            f"{f.get('problem')}: {f.get('detail')}"
            for webhook_id, f in sorted(findings.items())
        )
        return Check(
            ERROR,
            f"webhook watchdog: {listed}",
            "fix the webhook (`hookbird webhooks list`), then `hookbird reconcile` its "
            "administration for what was missed",
        )
    seen = sum(counts.values())
    history = f" ({plural(seen, 'problem')} found since Redis was set up)" if seen else ""
    return Check(OK, f"webhook watchdog: every subscribed webhook delivering{history}")


def judge_signing_secrets(
    signed: int, plaintext: list[str], unreadable: str | None, has_key: bool
) -> Iterator[Check]:
    """The subscription store's signing secrets: readable with the key, none in plaintext.

    ``signed`` counts entries with secrets, ``plaintext`` names those an older version
    stored unencrypted, ``unreadable`` is why the key could not decrypt one (or None).
    """
    if unreadable is not None:
        yield Check(
            ERROR,
            "stored signing secrets cannot be decrypted: the receiver answers those "
            "webhooks' pushes with 503 until this is fixed",
            unreadable,
        )
    if plaintext:
        shown = ", ".join(plaintext[:5]) + (", …" if len(plaintext) > 5 else "")
        first = (
            ""
            if has_key
            else "make a key (python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())'), set it as HOOKBIRD_SECRET_KEY for "
            "every hookbird process, then "
        )
        yield Check(
            WARN,
            f"{plural(len(plaintext), 'webhook')} with signing secrets in plaintext in Redis: "
            f"{shown}",
            f"{first}run `hookbird webhooks encrypt` (or re-add them)",
        )
    elif signed and unreadable is None:
        yield Check(
            OK, f"signing secrets of {plural(signed, 'webhook')} encrypted at rest and readable"
        )


def judge_signature_policy(
    unsigned: list[str], env_token: bool, env_signed: bool, required: bool
) -> Iterator[Check]:
    """Where a push is accepted on a token alone, or refused for want of a secret.

    ``unsigned`` names stored webhooks without a signing secret; ``env_token`` and
    ``env_signed`` say whether ``HOOKBIRD_WEBHOOK_TOKEN`` and ``HOOKBIRD_WEBHOOK_SECRET``
    are set; ``required`` is ``HOOKBIRD_REQUIRE_SIGNATURE``.
    """
    if unsigned:
        shown = ", ".join(unsigned[:5]) + (", …" if len(unsigned) > 5 else "")
        count = plural(len(unsigned), "stored webhook")
        if required:
            yield Check(
                ERROR,
                f"{count} without a signing secret ({shown}): HOOKBIRD_REQUIRE_SIGNATURE "
                "refuses all their pushes (401)",
                "re-register them with `hookbird webhooks register` (Moneybird shows a "
                "secret only when a webhook is created), or turn HOOKBIRD_REQUIRE_SIGNATURE off",
            )
        else:
            yield Check(
                WARN,
                f"{count} without a signing secret ({shown}): their pushes are accepted on "
                "the token alone",
                "re-register them with `hookbird webhooks register`, which stores Moneybird's "
                "secret, then set HOOKBIRD_REQUIRE_SIGNATURE=true",
            )
    if env_token:
        what = (
            "HOOKBIRD_WEBHOOK_TOKEN is a master key: it is accepted for any webhook_id not "
            "in the store and for any administration"
        )
        if required and not env_signed:
            yield Check(
                ERROR,
                f"{what}; without HOOKBIRD_WEBHOOK_SECRET, HOOKBIRD_REQUIRE_SIGNATURE refuses "
                "every push it would accept",
                "set HOOKBIRD_WEBHOOK_SECRET to the webhook's signing secret",
            )
        else:
            yield Check(
                WARN,
                what + ("" if env_signed else ", on the token alone (no HOOKBIRD_WEBHOOK_SECRET)"),
                "keep it as secret as an API key; better, store each webhook with "
                "`hookbird webhooks register` and unset HOOKBIRD_WEBHOOK_TOKEN",
            )
    elif required and not unsigned:
        yield Check(OK, "every push must carry a valid signature (HOOKBIRD_REQUIRE_SIGNATURE)")


#: Moneybird scope → a cheap read that needs it (``settings`` is probed through webhooks).
SCOPE_PROBES = {
    "sales_invoices": "sales_invoices",
    "documents": "documents/purchase_invoices",
    "estimates": "estimates",
    "bank": "financial_accounts",
    "time_entries": "time_entries",
}


def judge_scopes(found: Mapping[str, bool | None]) -> Check:
    """Which scopes a personal token has, from probes: True has, False 403, None unknown."""
    has = [s for s, ok in found.items() if ok]
    lacks = [s for s, ok in found.items() if ok is False]
    unknown = [s for s, ok in found.items() if ok is None]
    text = f"token scopes: {', '.join(has) or 'none found'}"
    if lacks:
        text += f" (not: {', '.join(lacks)})"
    if unknown:
        text += f" (not checked: {', '.join(unknown)})"
    return Check(OK, text)


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


# -- replication and Sentinel ---------------------------------------------------------


def online_replicas(replication: Mapping[str, Any]) -> int:
    """Replicas that ``INFO replication`` lists as online (``slaveN:…,state=online``)."""
    return sum(
        1
        for key, value in replication.items()
        if key.startswith("slave") and isinstance(value, Mapping) and value.get("state") == "online"
    )


def judge_replication(
    replication: Mapping[str, Any],
    min_replicas: int,
    min_replicas_to_write: int | None,
    sentinel: bool,
) -> Iterator[Check]:
    """Role, connected replicas against HOOKBIRD_MIN_REPLICAS, and Redis's own
    ``min-replicas-to-write`` (None: CONFIG is disabled, as on some managed Redis)."""
    role = str(replication.get("role", "?"))
    if role != "master":
        yield Check(
            ERROR,
            f"REDIS_URL leads to a {role}, not the primary: every push is refused",
            "point REDIS_URL at the primary, or at your Sentinels with redis+sentinel://",
        )
        return
    replicas = online_replicas(replication)
    yield Check(OK, f"Redis is the primary, {plural(replicas, 'replica')} online")
    if min_replicas > replicas:
        yield Check(
            ERROR,
            f"HOOKBIRD_MIN_REPLICAS={min_replicas} but {plural(replicas, 'replica')} online: "
            "every push is answered 503",
            "bring the replicas back, or lower HOOKBIRD_MIN_REPLICAS",
        )
    elif min_replicas:
        yield Check(OK, f"pushes acknowledged once {plural(min_replicas, 'replica')} have them")
    elif replicas or sentinel:
        yield Check(
            WARN,
            "HOOKBIRD_MIN_REPLICAS=0: a failover can lose pushes acknowledged just before it",
            "set HOOKBIRD_MIN_REPLICAS=1 (docs/operations.md, replicated acknowledgements)",
        )
    if min_replicas_to_write is None:
        return
    if min_replicas_to_write > replicas:
        yield Check(
            ERROR,
            f"min-replicas-to-write {min_replicas_to_write} but "
            f"{plural(replicas, 'replica')} online: Redis refuses every write",
            "bring the replicas back, or lower min-replicas-to-write",
        )
    elif min_replicas_to_write == 0 and (replicas or sentinel):
        yield Check(
            WARN,
            "min-replicas-to-write 0: a primary cut off from its replicas keeps taking pushes "
            "that a failover on the other side discards",
            "set min-replicas-to-write 1 and min-replicas-max-lag 10 on every Redis "
            "(deploy/redis-sentinel.conf)",
        )
    elif min_replicas_to_write:
        yield Check(OK, f"min-replicas-to-write {min_replicas_to_write}")


@dataclass(frozen=True)
class SentinelView:
    """What one Sentinel said about the service: the primary it names, or why not."""

    address: str
    primary: str | None = None
    error: str | None = None


def judge_sentinels(service: str, views: list[SentinelView], connected: str) -> Iterator[Check]:
    """Sentinels reachable, a majority of them, all naming the primary hookbird reached
    (``connected``, ``host:port``)."""
    reachable = [v for v in views if v.error is None]
    for view in views:
        if view.error is not None:
            yield Check(
                WARN, f"Sentinel {view.address} unreachable: {view.error}", "check it is running"
            )
    majority = len(views) // 2 + 1
    if len(reachable) < majority:
        yield Check(
            ERROR,
            f"{len(reachable)} of {plural(len(views), 'Sentinel')} reachable: too few to agree "
            "on a failover",
            "start the Sentinels, or fix the hosts in REDIS_URL",
        )
    named = {v.primary for v in reachable}
    if None in named:
        unknown = ", ".join(v.address for v in reachable if v.primary is None)
        yield Check(
            ERROR,
            f"Sentinel {unknown} does not monitor a service named {service!r}",
            "fix the service name in REDIS_URL (…/service_name/db)",
        )
    names = sorted(n for n in named if n is not None)
    if len(names) > 1:
        said = "; ".join(f"{v.address} says {v.primary}" for v in reachable)
        yield Check(
            ERROR,
            f"Sentinels disagree on the primary of {service!r}: {said}",
            "a failover may be under way: run doctor again; if it lasts, check the "
            "Sentinels' network and their `sentinel monitor` lines",
        )
    elif names:
        where = "matches" if names[0] == connected else f"but hookbird reached {connected}"
        status = OK if names[0] == connected else WARN
        yield Check(
            status,
            f"{plural(len(reachable), 'Sentinel')} of {len(views)} name {names[0]} as primary "
            f"of {service!r} ({where})",
            "" if status == OK else "run doctor again after the failover",
        )
