"""hookbird's configuration: read from the environment once, at the edge.

Every process builds one frozen :class:`Settings` with :meth:`Settings.from_env`
(the environment, plus an optional ``.env`` file whose values the environment
overrides) and passes it down. Nothing else in hookbird reads ``os.environ``.
Bad values fail loudly, naming the variable and what it expects.

Each setting is declared once, as a field of :class:`Settings` made with
:func:`setting`: its variable, its default as one would write it in the environment,
the parser that reads it, its meaning, its section of ``docs/configuration.md`` and an
example. The field's default is that text, parsed. :data:`FIELDS` lists the
declarations; ``from_env``, ``hookbird config``, ``scripts/config-docs`` (which writes
``docs/configuration.md``) and the tests all read them from there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeAlias, TypeVar, cast

T = TypeVar("T")
#: Reads one variable's text (the variable's name first, for error messages).
Parser: TypeAlias = Callable[[str, str], T]


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


def _parse_int(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw.strip().replace("_", ""))
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _parse_float(name: str, raw: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _parse_entry_points(raw: str) -> bool | tuple[str, ...]:
    """``on``/``off`` (and their synonyms), or the names of the entry points to load."""
    word = raw.strip().lower()
    if word in ("on", "1", "true"):
        return True
    if word in ("off", "0", "false", ""):
        return False
    return _parse_list(raw)


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


# -- the parsers settings are declared with ---------------------------------------------
def _int(*, minimum: int = 0) -> Parser[int]:
    return lambda name, raw: _parse_int(name, raw, minimum=minimum)


def _float(*, minimum: float = 0.0) -> Parser[float]:
    return lambda name, raw: _parse_float(name, raw, minimum=minimum)


def _choice_of(*choices: str) -> Parser[str]:
    return lambda name, raw: _choice(name, raw, choices)


def _text(_name: str, raw: str) -> str:
    return raw.strip()


def _bool(name: str, raw: str) -> bool:
    return _parse_bool(name, raw)


def _list(_name: str, raw: str) -> tuple[str, ...]:
    return _parse_list(raw)


def _scopes(_name: str, raw: str) -> tuple[str, ...]:
    return _parse_list(raw.replace(" ", ","))


def _url(_name: str, raw: str) -> str:
    return raw.rstrip("/")


def _path(_name: str, raw: str) -> Path:
    return Path(raw)


def _entry_points(_name: str, raw: str) -> bool | tuple[str, ...]:
    return _parse_entry_points(raw)


class Section(StrEnum):
    """The sections of ``docs/configuration.md``, in the order the page lists them."""

    REDIS = "Redis and the queue"
    RECEIVING = "Receiving pushes"
    LOGGING = "Logging"
    WORKERS = "Workers and handlers"
    API = "The Moneybird API"
    OAUTH = "OAuth (many administrations)"


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, the attribute it sets, its default and meaning.

    ``default``: the text the variable defaults to (None: unset, and the attribute is
    ``unset``). ``secret``: its value is never shown (``hookbird config`` says only
    "(set)", ``repr`` leaves it out, logs blank it). ``parse`` turns the variable's text
    into the attribute's value, or raises :class:`SettingsError`. ``section`` and
    ``example`` place it in ``docs/configuration.md``.
    """

    env: str
    attr: str
    default: str | None
    doc: str
    secret: bool = False
    _: KW_ONLY
    section: Section
    example: str
    parse: Parser[Any]
    unset: Any = None


#: The examples' stand-in for a secret; refused as a webhook token or signing secret.
PLACEHOLDER = "change-me"

_DECLARED = "hookbird.setting"


def setting(
    env: str,
    *,
    default: str | None,
    parse: Parser[T],
    doc: str,
    section: Section,
    example: str,
    secret: bool = False,
    unset: T | None = None,
) -> T:
    """Declare a :class:`Settings` field read from the variable ``env``.

    The field's default is ``default`` parsed (``unset`` when ``default`` is None); the
    attribute name is the field's own (:data:`FIELDS` fills it in).
    """
    declared = Setting(
        env=env,
        attr="",
        default=default,
        doc=doc,
        secret=secret,
        section=section,
        example=example,
        parse=parse,
        unset=unset,
    )
    value = unset if default is None else parse(env, default)
    # A dataclass field; typed as its value so each declaration's type is checked.
    return cast(T, field(default=value, repr=not secret, metadata={_DECLARED: declared}))


@dataclass(frozen=True)
class Settings:
    """Everything hookbird can be told, with safe defaults. Build it with :meth:`from_env`."""

    redis_url: str | None = setting(
        "REDIS_URL",
        default=None,
        parse=_text,
        doc=(
            "Redis to use: `redis://`, `rediss://` (TLS), `unix://`, or Sentinel with "
            "`redis+sentinel://host:26379[,host:26379…]/service_name[/db]` (see "
            "docs/operations.md). Unset: `hookbird dev` starts a private Redis under "
            "HOOKBIRD_DATA_DIR; `serve` and `worker` refuse to start."
        ),
        section=Section.REDIS,
        example="redis://:change-me@redis.internal:6379/0",
    )
    webhook_token: str | None = setting(
        "HOOKBIRD_WEBHOOK_TOKEN",
        default=None,
        parse=_text,
        doc=(
            "Single-webhook mode: the `webhook_token` every push must carry. A master key for "
            "webhooks not in the store (see docs/security.md); the examples' `change-me` is "
            "refused."
        ),
        section=Section.RECEIVING,
        example="change-me",
        secret=True,
    )
    webhook_secrets: tuple[str, ...] = setting(
        "HOOKBIRD_WEBHOOK_SECRET",
        default=None,
        parse=_list,
        doc=(
            "Single-webhook mode: the signing secret(s), comma-separated during rotation. When "
            "set, `Moneybird-Signature` is required."
        ),
        section=Section.RECEIVING,
        example="change-me-new,change-me-old",
        secret=True,
        unset=(),
    )
    require_signature: bool = setting(
        "HOOKBIRD_REQUIRE_SIGNATURE",
        default="false",
        parse=_bool,
        doc=(
            "Refuse (401) every push without a valid `Moneybird-Signature`, also for stored "
            "webhooks without a signing secret and for `HOOKBIRD_WEBHOOK_TOKEN` without "
            "`HOOKBIRD_WEBHOOK_SECRET`."
        ),
        section=Section.RECEIVING,
        example="true",
    )
    max_body_bytes: int = setting(
        "HOOKBIRD_MAX_BODY_BYTES",
        default="1048576",
        parse=_int(minimum=1),
        doc="Largest push body accepted; larger ones get 413.",
        section=Section.RECEIVING,
        example="2097152",
    )
    body_timeout: float = setting(
        "HOOKBIRD_BODY_TIMEOUT",
        default="10",
        parse=_float(minimum=0.1),
        doc="Seconds a client may take to send the whole body; slower ones get 408.",
        section=Section.RECEIVING,
        example="10",
    )
    header_timeout: float = setting(
        "HOOKBIRD_HEADER_TIMEOUT",
        default="10",
        parse=_float(minimum=0.1),
        doc=(
            "Seconds a client may take to send a request's head (request line and headers) "
            "from its first byte; slower ones get 408 and the connection is closed. A push's "
            "head is a few hundred bytes that arrive in one packet: 10 s is generous for any "
            "real client and cuts off connections that trickle a header byte at a time."
        ),
        section=Section.RECEIVING,
        example="10",
    )
    idle_timeout: float = setting(
        "HOOKBIRD_IDLE_TIMEOUT",
        default="5",
        parse=_float(minimum=0.1),
        doc=(
            "Seconds a connection may stay open without a request in progress (before the "
            "first one and between keep-alive requests) before the receiver closes it. 5 s is "
            "uvicorn's keep-alive default: pushes come one per connection or in quick "
            "succession, and an idle socket holds a place under HOOKBIRD_MAX_CONNECTIONS. "
            "Behind a proxy that keeps upstream connections open, set it above the proxy's "
            "upstream idle timeout."
        ),
        section=Section.RECEIVING,
        example="75",
    )
    max_header_bytes: int = setting(
        "HOOKBIRD_MAX_HEADER_BYTES",
        default="16384",
        parse=_int(minimum=1024),
        doc=(
            "Largest request head (request line and headers) accepted; larger ones get 431. 16 "
            "KiB is what Node.js and uvicorn's h11 allow; a push's head is under 1 KiB."
        ),
        section=Section.RECEIVING,
        example="16384",
    )
    max_headers: int = setting(
        "HOOKBIRD_MAX_HEADERS",
        default="100",
        parse=_int(minimum=10),
        doc="Most header fields a request may carry; more get 431 (Apache's default limit).",
        section=Section.RECEIVING,
        example="100",
    )
    max_connections: int = setting(
        "HOOKBIRD_MAX_CONNECTIONS",
        default="800",
        parse=_int(minimum=1),
        doc=(
            "Open connections the receiver serves at once, per process; past it new "
            "connections are closed before they are read, and a warning is logged (at most "
            "every 10 s). 800 stays under the usual limit of 1,024 file descriptors, with room "
            "for Redis connections and logs; raise it only together with the process's "
            "descriptor limit (`LimitNOFILE` in the systemd unit)."
        ),
        section=Section.RECEIVING,
        example="3500",
    )
    signature_tolerance: int = setting(
        "HOOKBIRD_SIGNATURE_TOLERANCE",
        default="300",
        parse=_int(minimum=1),
        doc="Seconds the signature timestamp `t` may differ from our clock.",
        section=Section.RECEIVING,
        example="300",
    )
    dedup_ttl: int = setting(
        "HOOKBIRD_DEDUP_TTL",
        default="604800",
        parse=_int(minimum=60),
        doc=(
            "Seconds an Idempotency-Key is remembered (duplicates within it get 200 "
            "duplicate). At least twice HOOKBIRD_SIGNATURE_TOLERANCE, or signed pushes could "
            "be replayed."
        ),
        section=Section.RECEIVING,
        example="1209600",
    )
    event_retention: int = setting(
        "HOOKBIRD_EVENT_RETENTION",
        default="604800",
        parse=_int(minimum=60),
        doc="Seconds a stored raw push is kept for `hookbird events` and replay.",
        section=Section.RECEIVING,
        example="1209600",
    )
    queue: str = setting(
        "HOOKBIRD_QUEUE",
        default="hookbird",
        parse=_text,
        doc="Name of the RQ queue pushes go to.",
        section=Section.REDIS,
        example="hookbird",
    )
    redis_timeout: float = setting(
        "HOOKBIRD_REDIS_TIMEOUT",
        default="2",
        parse=_float(minimum=0.01),
        doc="Seconds to wait for Redis before answering 503.",
        section=Section.REDIS,
        example="2",
    )
    min_replicas: int = setting(
        "HOOKBIRD_MIN_REPLICAS",
        default="0",
        parse=_int(),
        doc=(
            "Replicated acknowledgements: the receiver answers 200 only once Redis `WAIT` "
            "confirms this many replicas have the push (one WAIT per batch of pushes); "
            "otherwise 503 with `Retry-After`. 0: off, acknowledged once the primary has it."
        ),
        section=Section.REDIS,
        example="1",
    )
    min_replicas_timeout: float = setting(
        "HOOKBIRD_MIN_REPLICAS_TIMEOUT",
        default="1",
        parse=_float(minimum=0.001),
        doc=(
            "Seconds `WAIT` waits for HOOKBIRD_MIN_REPLICAS replicas before the batch is "
            "answered 503. Less than HOOKBIRD_REDIS_TIMEOUT, which bounds the whole call."
        ),
        section=Section.REDIS,
        example="1",
    )
    redis_outage_grace: float = setting(
        "HOOKBIRD_REDIS_OUTAGE_GRACE",
        default="60",
        parse=_float(minimum=0),
        doc=(
            "Seconds workers, their scheduler, `hookbird dev` and the CLI wait out Redis being "
            "unreachable (each command tried again until it gets through) before exiting "
            "non-zero. 60 covers a Sentinel failover (30 s `down-after-milliseconds` by "
            "default, then a few seconds to elect and promote a replica) or a container "
            "restart with its AOF load, with room to spare; longer only delays what a "
            "supervisor would do. The receiver never waits: it answers 503 while Redis is away."
        ),
        section=Section.REDIS,
        example="60",
    )
    retry_after: int = setting(
        "HOOKBIRD_RETRY_AFTER",
        default="30",
        parse=_int(minimum=1),
        doc="Seconds sent in `Retry-After` with a 503.",
        section=Section.RECEIVING,
        example="30",
    )
    subscription_cache_ttl: float = setting(
        "HOOKBIRD_SUBSCRIPTION_CACHE_TTL",
        default="5",
        parse=_float(),
        doc="Seconds the receiver caches a webhook subscription read from Redis.",
        section=Section.RECEIVING,
        example="5",
    )
    log_level: str = setting(
        "HOOKBIRD_LOG_LEVEL",
        default="info",
        parse=_choice_of("debug", "info", "warning", "error"),
        doc="debug, info, warning or error.",
        section=Section.LOGGING,
        example="debug",
    )
    log_each_push: bool = setting(
        "HOOKBIRD_LOG_EACH_PUSH",
        default="false",
        parse=_bool,
        doc=(
            "Log a line for every stored or duplicate push (on in `hookbird dev`). Off: the "
            "receiver logs a summary line every 10 s; refused pushes are always logged."
        ),
        section=Section.LOGGING,
        example="true",
    )
    log_format: str = setting(
        "HOOKBIRD_LOG_FORMAT",
        default="auto",
        parse=_choice_of("auto", "json", "console"),
        doc="auto (console on a terminal, JSON otherwise), json or console.",
        section=Section.LOGGING,
        example="json",
    )
    data_dir: Path = setting(  # noqa: RUF009 (a Path is immutable)
        "HOOKBIRD_DATA_DIR",
        default=".hookbird",
        parse=_path,
        doc="Where `hookbird dev` keeps its private Redis data (AOF on).",
        section=Section.REDIS,
        example="/var/lib/hookbird",
    )
    host: str = setting(
        "HOST",
        default="127.0.0.1",
        parse=_text,
        doc="Address `hookbird serve` listens on.",
        section=Section.RECEIVING,
        example="0.0.0.0",
    )
    port: int = setting(
        "PORT",
        default="8000",
        parse=_int(minimum=1),
        doc="Port `hookbird serve` listens on (honoured by the Procfile).",
        section=Section.RECEIVING,
        example="8000",
    )
    console: str = setting(
        "HOOKBIRD_CONSOLE",
        default="auto",
        parse=_choice_of("auto", "off", "open"),
        doc=(
            "The events console at /console (docs/console.md). auto: served when "
            "HOOKBIRD_CONSOLE_PASSWORD is set, and by `hookbird dev` on a loopback address; "
            "off: never; open: without a password, which `hookbird serve` allows only on "
            "127.0.0.1 or ::1."
        ),
        section=Section.RECEIVING,
        example="off",
    )
    console_password: str | None = setting(
        "HOOKBIRD_CONSOLE_PASSWORD",
        default=None,
        parse=_text,
        doc=(
            "Password of the events console (HTTP Basic, any user name). Set: the receiver "
            "serves /console to whoever knows it; keep /console off the public route anyway."
        ),
        section=Section.RECEIVING,
        example="change-me",
        secret=True,
    )
    moneybird_api_token: str | None = setting(
        "MONEYBIRD_API_TOKEN",
        default=None,
        parse=_text,
        doc="Personal API token for single-administration setups.",
        section=Section.API,
        example="change-me",
        secret=True,
    )
    moneybird_api_url: str = setting(
        "MONEYBIRD_API_URL",
        default="https://moneybird.com/api/v2",
        parse=_url,
        doc="Base URL of the Moneybird API (point it elsewhere for tests or staging).",
        section=Section.API,
        example="https://moneybird.com/api/v2",
    )
    secret_key: str | None = setting(
        "HOOKBIRD_SECRET_KEY",
        default=None,
        parse=_text,
        doc=(
            "Fernet key that encrypts what hookbird keeps secret in Redis: OAuth tokens and "
            "webhook signing secrets. Needed by every process that stores or reads them, the "
            "receiver included. Comma-separated keys rotate: the first encrypts, any decrypts."
        ),
        section=Section.API,
        example="change-me-new-fernet-key,change-me-old-fernet-key",
        secret=True,
    )
    rate_limit: int = setting(
        "HOOKBIRD_RATE_LIMIT",
        default="150",
        parse=_int(minimum=1),
        doc="Moneybird requests allowed per HOOKBIRD_RATE_WINDOW, shared by every process.",
        section=Section.API,
        example="150",
    )
    reports_rate_limit: int = setting(
        "HOOKBIRD_REPORTS_RATE_LIMIT",
        default="50",
        parse=_int(minimum=1),
        doc=(
            "Requests to /reports/ allowed per HOOKBIRD_RATE_WINDOW (they count in both budgets)."
        ),
        section=Section.API,
        example="50",
    )
    rate_window: float = setting(
        "HOOKBIRD_RATE_WINDOW",
        default="300",
        parse=_float(minimum=0.1),
        doc="Seconds of Moneybird's rate-limit window.",
        section=Section.API,
        example="300",
    )
    rate_margin: float = setting(
        "HOOKBIRD_RATE_MARGIN",
        default="0.25",
        parse=_float(),
        doc="Seconds added to the window so freed slots never reach Moneybird early.",
        section=Section.API,
        example="0.25",
    )
    rate_slack: float = setting(
        "HOOKBIRD_RATE_SLACK",
        default="1",
        parse=_float(),
        doc=(
            "Seconds per window added to the retry time promised to a job that waits more than "
            "one window, so it still finds its slot when the scheduler runs it a little late."
        ),
        section=Section.API,
        example="1",
    )
    rate_scope: str = setting(
        "HOOKBIRD_RATE_SCOPE",
        default="credential",
        parse=_choice_of("credential", "global"),
        doc=(
            "credential (one budget per token; widened to one for all for a day after a 429 "
            "the token's budget did not expect) or global (one for all from the start)."
        ),
        section=Section.API,
        example="global",
    )
    api_timeout: float = setting(
        "HOOKBIRD_API_TIMEOUT",
        default="30",
        parse=_float(minimum=0.1),
        doc="Seconds to wait for a Moneybird answer.",
        section=Section.API,
        example="30",
    )
    api_retries: int = setting(
        "HOOKBIRD_API_RETRIES",
        default="3",
        parse=_int(),
        doc="Retries of an idempotent Moneybird call after 5xx, timeout or connection error.",
        section=Section.API,
        example="3",
    )
    oauth_client_id: str | None = setting(
        "MONEYBIRD_OAUTH_CLIENT_ID",
        default=None,
        parse=_text,
        doc="OAuth application's client id.",
        section=Section.OAUTH,
        example="change-me",
    )
    oauth_client_secret: str | None = setting(
        "MONEYBIRD_OAUTH_CLIENT_SECRET",
        default=None,
        parse=_text,
        doc="OAuth application's client secret.",
        section=Section.OAUTH,
        example="change-me",
        secret=True,
    )
    oauth_redirect_uri: str = setting(
        "MONEYBIRD_OAUTH_REDIRECT_URI",
        default="urn:ietf:wg:oauth:2.0:oob",
        parse=_text,
        doc="Redirect URI registered with the OAuth application.",
        section=Section.OAUTH,
        example="https://app.example.com/moneybird/callback",
    )
    oauth_scopes: tuple[str, ...] = setting(
        "MONEYBIRD_OAUTH_SCOPES",
        default="sales_invoices,documents,settings",
        parse=_scopes,
        doc=(
            "Scopes to ask for, comma-separated (sales_invoices documents estimates bank "
            "time_entries settings; `settings` is needed to manage webhooks)."
        ),
        section=Section.OAUTH,
        example="sales_invoices,documents,settings",
    )
    oauth_url: str = setting(
        "MONEYBIRD_OAUTH_URL",
        default="https://moneybird.com/oauth",
        parse=_url,
        doc="Base URL of Moneybird's OAuth endpoints (authorize, token).",
        section=Section.OAUTH,
        example="https://moneybird.com/oauth",
    )
    handlers: tuple[str, ...] = setting(
        "HOOKBIRD_HANDLERS",
        default=None,
        parse=_list,
        doc="Extra handler modules, comma-separated, each with a `router`.",
        section=Section.WORKERS,
        example="crm_sync.handlers,billing.handlers",
        unset=(),
    )
    #: True: every installed plugin; False: none; names: only those entry points.
    entry_points: bool | tuple[str, ...] = setting(
        "HOOKBIRD_ENTRY_POINTS",
        default="on",
        parse=_entry_points,
        doc=(
            "on: load every handler plugin installed as a package (entry-point group "
            "`hookbird.handlers`); off: only HOOKBIRD_HANDLERS; or a comma-separated list of "
            "entry-point names to load only those (a missing one stops the worker)."
        ),
        section=Section.WORKERS,
        example="off",
    )
    worker_class: str = setting(
        "HOOKBIRD_WORKER_CLASS",
        default="simple",
        parse=_choice_of("simple", "fork"),
        doc=(
            "simple (one process: keeps the client's connections, fastest) or fork (a child "
            "per push: a crashing handler cannot take the worker down)."
        ),
        section=Section.WORKERS,
        example="fork",
    )
    max_attempts: int = setting(
        "HOOKBIRD_MAX_ATTEMPTS",
        default="8",
        parse=_int(minimum=1),
        doc="Attempts per handler before a failing push goes to the dead letter.",
        section=Section.WORKERS,
        example="8",
    )
    retry_base: float = setting(
        "HOOKBIRD_RETRY_BASE",
        default="60",
        parse=_float(minimum=1),
        doc="Seconds before the first retry; each later wait is 3x longer (±20 % jitter).",
        section=Section.WORKERS,
        example="60",
    )
    shutdown_grace: float = setting(
        "HOOKBIRD_SHUTDOWN_GRACE",
        default="25",
        parse=_float(),
        doc="Seconds a stopping worker lets the current push finish before putting it back.",
        section=Section.WORKERS,
        example="25",
    )
    reconcile_interval: int = setting(
        "HOOKBIRD_RECONCILE_INTERVAL",
        default="3600",
        parse=_int(minimum=0),
        doc=(
            "Seconds between the workers' reconciliations of every administration with "
            "credentials or a subscribed webhook (one at a time across all workers). Hourly "
            "costs one API call per resource and hour when nothing changed, well under 1 % of "
            "the budget, and finds a lost push within the hour. 0: off. See "
            "[reconciliation.md](reconciliation.md#scheduled-reconciliation)."
        ),
        section=Section.WORKERS,
        example="900",
    )
    reconcile_budget_share: float = setting(
        "HOOKBIRD_RECONCILE_BUDGET_SHARE",
        default="0.25",
        parse=_float(minimum=0.01),
        doc=(
            "The part of the shared rate budget a scheduled reconciliation may use: it sends "
            "a request only while more than the rest is free, so handlers always have the "
            "rest, and goes on later when it is not."
        ),
        section=Section.WORKERS,
        example="0.1",
    )
    webhook_watchdog_interval: int = setting(
        "HOOKBIRD_WEBHOOK_WATCHDOG_INTERVAL",
        default="600",
        parse=_int(minimum=0),
        doc=(
            "Seconds between the workers' checks of every subscribed webhook in Moneybird "
            "(deactivated, missing, or its last push not answered 200): one API call per "
            "administration, one check at a time across all workers. 0: off. See "
            "[reconciliation.md](reconciliation.md#webhook-watchdog)."
        ),
        section=Section.WORKERS,
        example="300",
    )
    webhook_reactivate: bool = setting(
        "HOOKBIRD_WEBHOOK_REACTIVATE",
        default="false",
        parse=_bool,
        doc=(
            "When the watchdog finds a webhook Moneybird deactivated: activate it again and "
            "reconcile its administration, to queue what was missed meanwhile."
        ),
        section=Section.WORKERS,
        example="true",
    )
    worker_liveness: float = setting(
        "HOOKBIRD_WORKER_LIVENESS",
        default="30",
        parse=_float(minimum=1),
        doc=(
            "Seconds without a heartbeat after which a worker counts as dead and its push runs "
            "again."
        ),
        section=Section.WORKERS,
        example="30",
    )

    def __post_init__(self) -> None:
        if self.min_replicas and self.min_replicas_timeout >= self.redis_timeout:
            raise SettingsError(
                f"HOOKBIRD_MIN_REPLICAS_TIMEOUT ({self.min_replicas_timeout:g} s) must be less "
                f"than HOOKBIRD_REDIS_TIMEOUT ({self.redis_timeout:g} s): the receiver stops "
                "waiting for Redis after the latter, before WAIT could answer"
            )
        if self.dedup_ttl < 2 * self.signature_tolerance:
            raise SettingsError(
                f"HOOKBIRD_DEDUP_TTL ({self.dedup_ttl} s) must be at least twice "
                f"HOOKBIRD_SIGNATURE_TOLERANCE ({self.signature_tolerance} s), so at least "
                f"{2 * self.signature_tolerance} s: a signature stays valid for that long "
                "(its t may be that far behind or ahead of our clock), and a captured push "
                "replayed after its dedup key expired would be accepted as new"
            )

    def refuse_placeholders(self) -> None:
        """Raise :class:`SettingsError` if the webhook token or a signing secret is still
        the examples' ``change-me``; called by the commands that receive or handle pushes."""
        named = [("HOOKBIRD_WEBHOOK_TOKEN", self.webhook_token)]
        named += [("HOOKBIRD_WEBHOOK_SECRET", secret) for secret in self.webhook_secrets]
        for env, value in named:
            if value and value.strip().lower().startswith(PLACEHOLDER):
                raise SettingsError(
                    f"{env} is still the placeholder {PLACEHOLDER!r} from the examples: "
                    "anyone who has read them could send pushes. Use the value Moneybird "
                    "returned when the webhook was created, or make a random one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = Path(".env")
    ) -> Settings:
        """Read every variable in :data:`FIELDS`; the environment wins over ``.env``."""
        values: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            values.update(read_dotenv(dotenv))
        values.update(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {}
        for setting in FIELDS:
            raw = values.get(setting.env)
            if raw is None or raw.strip() == "":
                continue
            kwargs[setting.attr] = setting.parse(setting.env, raw)
        return cls(**kwargs)

    def secrets(self) -> tuple[str, ...]:
        """Every configured secret value, so log scrubbing can blank them wherever they appear."""
        found: list[str | None] = []
        for setting in FIELDS:
            if setting.secret:
                value = getattr(self, setting.attr)
                found.extend(value if isinstance(value, tuple) else [value])
        return tuple(s for s in found if s)


#: Every variable hookbird reads, in the order ``hookbird config`` lists them.
FIELDS: tuple[Setting, ...] = tuple(
    replace(f.metadata[_DECLARED], attr=f.name) for f in fields(Settings)
)


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("export "):
            text = text[len("export ") :].lstrip()
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
