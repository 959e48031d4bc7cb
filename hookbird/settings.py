"""hookbird's configuration: read from the environment once, at the edge.

Every process builds one frozen :class:`Settings` with :meth:`Settings.from_env`
(the environment, plus an optional ``.env`` file whose values the environment
overrides) and passes it down. Nothing else in hookbird reads ``os.environ``.
Bad values fail loudly, naming the variable and what it expects.

The table in ``docs/configuration.md`` lists every variable; :data:`FIELDS` is
its source, so ``hookbird doctor`` and the docs test can check they agree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


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


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, default (as text) and meaning.

    ``secret``: its value is never shown (``hookbird config`` says only "(set)").
    """

    env: str
    attr: str
    default: str | None
    doc: str
    secret: bool = False


#: The examples' stand-in for a secret; refused as a webhook token or signing secret.
PLACEHOLDER = "change-me"

#: Every variable hookbird reads, in the order the docs list them.
FIELDS: tuple[Setting, ...] = (
    Setting(
        "REDIS_URL",
        "redis_url",
        None,
        "Redis to use. Unset: `hookbird dev` starts a private Redis under "
        "HOOKBIRD_DATA_DIR; `serve` and `worker` refuse to start.",
    ),
    Setting(
        "HOOKBIRD_WEBHOOK_TOKEN",
        "webhook_token",
        None,
        "Single-webhook mode: the `webhook_token` every push must carry. A master key for "
        "webhooks not in the store (see docs/security.md); the examples' `change-me` is refused.",
        secret=True,
    ),
    Setting(
        "HOOKBIRD_WEBHOOK_SECRET",
        "webhook_secrets",
        None,
        "Single-webhook mode: the signing secret(s), comma-separated during rotation. "
        "When set, `Moneybird-Signature` is required.",
        secret=True,
    ),
    Setting(
        "HOOKBIRD_REQUIRE_SIGNATURE",
        "require_signature",
        "false",
        "Refuse (401) every push without a valid `Moneybird-Signature`, also for stored "
        "webhooks without a signing secret and for `HOOKBIRD_WEBHOOK_TOKEN` without "
        "`HOOKBIRD_WEBHOOK_SECRET`.",
    ),
    Setting(
        "HOOKBIRD_MAX_BODY_BYTES",
        "max_body_bytes",
        "1048576",
        "Largest push body accepted; larger ones get 413.",
    ),
    Setting(
        "HOOKBIRD_BODY_TIMEOUT",
        "body_timeout",
        "10",
        "Seconds a client may take to send the whole body; slower ones get 408.",
    ),
    Setting(
        "HOOKBIRD_HEADER_TIMEOUT",
        "header_timeout",
        "10",
        "Seconds a client may take to send a request's head (request line and headers) "
        "from its first byte; slower ones get 408 and the connection is closed. A push's "
        "head is a few hundred bytes that arrive in one packet: 10 s is generous for any "
        "real client and cuts off connections that trickle a header byte at a time.",
    ),
    Setting(
        "HOOKBIRD_IDLE_TIMEOUT",
        "idle_timeout",
        "5",
        "Seconds a connection may stay open without a request in progress (before the "
        "first one and between keep-alive requests) before the receiver closes it. 5 s is "
        "uvicorn's keep-alive default: pushes come one per connection or in quick "
        "succession, and an idle socket holds a place under HOOKBIRD_MAX_CONNECTIONS. "
        "Behind a proxy that keeps upstream connections open, set it above the proxy's "
        "upstream idle timeout.",
    ),
    Setting(
        "HOOKBIRD_MAX_HEADER_BYTES",
        "max_header_bytes",
        "16384",
        "Largest request head (request line and headers) accepted; larger ones get 431. "
        "16 KiB is what Node.js and uvicorn's h11 allow; a push's head is under 1 KiB.",
    ),
    Setting(
        "HOOKBIRD_MAX_HEADERS",
        "max_headers",
        "100",
        "Most header fields a request may carry; more get 431 (Apache's default limit).",
    ),
    Setting(
        "HOOKBIRD_MAX_CONNECTIONS",
        "max_connections",
        "800",
        "Open connections the receiver serves at once, per process; past it new "
        "connections are closed before they are read, and a warning is logged (at most "
        "every 10 s). 800 stays under the usual limit of 1,024 file descriptors, with room "
        "for Redis connections and logs; raise it only together with the process's "
        "descriptor limit (`LimitNOFILE` in the systemd unit).",
    ),
    Setting(
        "HOOKBIRD_SIGNATURE_TOLERANCE",
        "signature_tolerance",
        "300",
        "Seconds the signature timestamp `t` may differ from our clock.",
    ),
    Setting(
        "HOOKBIRD_DEDUP_TTL",
        "dedup_ttl",
        "604800",
        "Seconds an Idempotency-Key is remembered (duplicates within it get 200 duplicate). "
        "At least twice HOOKBIRD_SIGNATURE_TOLERANCE, or signed pushes could be replayed.",
    ),
    Setting(
        "HOOKBIRD_EVENT_RETENTION",
        "event_retention",
        "604800",
        "Seconds a stored raw push is kept for `hookbird events` and replay.",
    ),
    Setting("HOOKBIRD_QUEUE", "queue", "hookbird", "Name of the RQ queue pushes go to."),
    Setting(
        "HOOKBIRD_REDIS_TIMEOUT",
        "redis_timeout",
        "2",
        "Seconds to wait for Redis before answering 503.",
    ),
    Setting(
        "HOOKBIRD_RETRY_AFTER", "retry_after", "30", "Seconds sent in `Retry-After` with a 503."
    ),
    Setting(
        "HOOKBIRD_SUBSCRIPTION_CACHE_TTL",
        "subscription_cache_ttl",
        "5",
        "Seconds the receiver caches a webhook subscription read from Redis.",
    ),
    Setting("HOOKBIRD_LOG_LEVEL", "log_level", "info", "debug, info, warning or error."),
    Setting(
        "HOOKBIRD_LOG_EACH_PUSH",
        "log_each_push",
        "false",
        "Log a line for every stored or duplicate push (on in `hookbird dev`). Off: the "
        "receiver logs a summary line every 10 s; refused pushes are always logged.",
    ),
    Setting(
        "HOOKBIRD_LOG_FORMAT",
        "log_format",
        "auto",
        "auto (console on a terminal, JSON otherwise), json or console.",
    ),
    Setting(
        "HOOKBIRD_DATA_DIR",
        "data_dir",
        ".hookbird",
        "Where `hookbird dev` keeps its private Redis data (AOF on).",
    ),
    Setting("HOST", "host", "127.0.0.1", "Address `hookbird serve` listens on."),
    Setting("PORT", "port", "8000", "Port `hookbird serve` listens on (honoured by the Procfile)."),
    Setting(
        "MONEYBIRD_API_TOKEN",
        "moneybird_api_token",
        None,
        "Personal API token for single-administration setups.",
        secret=True,
    ),
    Setting(
        "MONEYBIRD_API_URL",
        "moneybird_api_url",
        "https://moneybird.com/api/v2",
        "Base URL of the Moneybird API (point it elsewhere for tests or staging).",
    ),
    Setting(
        "HOOKBIRD_SECRET_KEY",
        "secret_key",
        None,
        "Fernet key that encrypts what hookbird keeps secret in Redis: OAuth tokens and "
        "webhook signing secrets. Needed by every process that stores or reads them, the "
        "receiver included. Comma-separated keys rotate: the first encrypts, any decrypts.",
        secret=True,
    ),
    Setting(
        "HOOKBIRD_RATE_LIMIT",
        "rate_limit",
        "150",
        "Moneybird requests allowed per HOOKBIRD_RATE_WINDOW, shared by every process.",
    ),
    Setting(
        "HOOKBIRD_REPORTS_RATE_LIMIT",
        "reports_rate_limit",
        "50",
        "Requests to /reports/ allowed per HOOKBIRD_RATE_WINDOW (they count in both budgets).",
    ),
    Setting(
        "HOOKBIRD_RATE_WINDOW", "rate_window", "300", "Seconds of Moneybird's rate-limit window."
    ),
    Setting(
        "HOOKBIRD_RATE_MARGIN",
        "rate_margin",
        "0.25",
        "Seconds added to the window so freed slots never reach Moneybird early.",
    ),
    Setting(
        "HOOKBIRD_RATE_SLACK",
        "rate_slack",
        "1",
        "Seconds per window added to the retry time promised to a job that waits more than "
        "one window, so it still finds its slot when the scheduler runs it a little late.",
    ),
    Setting(
        "HOOKBIRD_RATE_SCOPE",
        "rate_scope",
        "credential",
        "credential (one budget per token, as Moneybird counts) or global (one for all).",
    ),
    Setting("HOOKBIRD_API_TIMEOUT", "api_timeout", "30", "Seconds to wait for a Moneybird answer."),
    Setting(
        "HOOKBIRD_API_RETRIES",
        "api_retries",
        "3",
        "Retries of an idempotent Moneybird call after 5xx, timeout or connection error.",
    ),
    Setting("MONEYBIRD_OAUTH_CLIENT_ID", "oauth_client_id", None, "OAuth application's client id."),
    Setting(
        "MONEYBIRD_OAUTH_CLIENT_SECRET",
        "oauth_client_secret",
        None,
        "OAuth application's client secret.",
        secret=True,
    ),
    Setting(
        "MONEYBIRD_OAUTH_REDIRECT_URI",
        "oauth_redirect_uri",
        "urn:ietf:wg:oauth:2.0:oob",
        "Redirect URI registered with the OAuth application.",
    ),
    Setting(
        "MONEYBIRD_OAUTH_SCOPES",
        "oauth_scopes",
        "sales_invoices,documents,settings",
        "Scopes to ask for, comma-separated (sales_invoices documents estimates bank "
        "time_entries settings; `settings` is needed to manage webhooks).",
    ),
    Setting(
        "MONEYBIRD_OAUTH_URL",
        "oauth_url",
        "https://moneybird.com/oauth",
        "Base URL of Moneybird's OAuth endpoints (authorize, token).",
    ),
    Setting(
        "HOOKBIRD_HANDLERS",
        "handlers",
        None,
        "Extra handler modules, comma-separated, each with a `router`.",
    ),
    Setting(
        "HOOKBIRD_ENTRY_POINTS",
        "entry_points",
        "on",
        "on: load every handler plugin installed as a package (entry-point group "
        "`hookbird.handlers`); off: only HOOKBIRD_HANDLERS; or a comma-separated list of "
        "entry-point names to load only those (a missing one stops the worker).",
    ),
    Setting(
        "HOOKBIRD_WORKER_CLASS",
        "worker_class",
        "simple",
        "simple (one process: keeps the client's connections, fastest) or fork "
        "(a child per push: a crashing handler cannot take the worker down).",
    ),
    Setting(
        "HOOKBIRD_MAX_ATTEMPTS",
        "max_attempts",
        "8",
        "Attempts per handler before a failing push goes to the dead letter.",
    ),
    Setting(
        "HOOKBIRD_RETRY_BASE",
        "retry_base",
        "60",
        "Seconds before the first retry; each later wait is 3x longer (±20 % jitter).",
    ),
    Setting(
        "HOOKBIRD_SHUTDOWN_GRACE",
        "shutdown_grace",
        "25",
        "Seconds a stopping worker lets the current push finish before putting it back.",
    ),
    Setting(
        "HOOKBIRD_WORKER_LIVENESS",
        "worker_liveness",
        "30",
        "Seconds without a heartbeat after which a worker counts as dead and its push runs again.",
    ),
)

_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "webhook_secrets": lambda _n, raw: _parse_list(raw),
    "handlers": lambda _n, raw: _parse_list(raw),
    "require_signature": _parse_bool,
    "max_body_bytes": lambda n, raw: _parse_int(n, raw, minimum=1),
    "body_timeout": lambda n, raw: _parse_float(n, raw, minimum=0.1),
    "header_timeout": lambda n, raw: _parse_float(n, raw, minimum=0.1),
    "idle_timeout": lambda n, raw: _parse_float(n, raw, minimum=0.1),
    "max_header_bytes": lambda n, raw: _parse_int(n, raw, minimum=1024),
    "max_headers": lambda n, raw: _parse_int(n, raw, minimum=10),
    "max_connections": lambda n, raw: _parse_int(n, raw, minimum=1),
    "signature_tolerance": lambda n, raw: _parse_int(n, raw, minimum=1),
    "dedup_ttl": lambda n, raw: _parse_int(n, raw, minimum=60),
    "event_retention": lambda n, raw: _parse_int(n, raw, minimum=60),
    "redis_timeout": lambda n, raw: _parse_float(n, raw, minimum=0.01),
    "retry_after": lambda n, raw: _parse_int(n, raw, minimum=1),
    "subscription_cache_ttl": lambda n, raw: _parse_float(n, raw),
    "log_level": lambda n, raw: _choice(n, raw, ("debug", "info", "warning", "error")),
    "log_format": lambda n, raw: _choice(n, raw, ("auto", "json", "console")),
    "log_each_push": _parse_bool,
    "port": lambda n, raw: _parse_int(n, raw, minimum=1),
    "data_dir": lambda _n, raw: Path(raw),
    "moneybird_api_url": lambda _n, raw: raw.rstrip("/"),
    "rate_limit": lambda n, raw: _parse_int(n, raw, minimum=1),
    "reports_rate_limit": lambda n, raw: _parse_int(n, raw, minimum=1),
    "rate_window": lambda n, raw: _parse_float(n, raw, minimum=0.1),
    "rate_margin": lambda n, raw: _parse_float(n, raw),
    "rate_slack": lambda n, raw: _parse_float(n, raw),
    "rate_scope": lambda n, raw: _choice(n, raw, ("credential", "global")),
    "api_timeout": lambda n, raw: _parse_float(n, raw, minimum=0.1),
    "api_retries": lambda n, raw: _parse_int(n, raw),
    "oauth_scopes": lambda _n, raw: _parse_list(raw.replace(" ", ",")),
    "oauth_url": lambda _n, raw: raw.rstrip("/"),
    "entry_points": lambda _n, raw: _parse_entry_points(raw),
    "worker_class": lambda n, raw: _choice(n, raw, ("simple", "fork")),
    "max_attempts": lambda n, raw: _parse_int(n, raw, minimum=1),
    "retry_base": lambda n, raw: _parse_float(n, raw, minimum=1),
    "shutdown_grace": lambda n, raw: _parse_float(n, raw),
    "worker_liveness": lambda n, raw: _parse_float(n, raw, minimum=1),
}


@dataclass(frozen=True)
class Settings:
    """Everything hookbird can be told, with safe defaults. Build it with :meth:`from_env`."""

    redis_url: str | None = None
    webhook_token: str | None = field(default=None, repr=False)
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    require_signature: bool = False
    max_body_bytes: int = 1024 * 1024
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int = 800
    signature_tolerance: int = 300
    dedup_ttl: int = 7 * 24 * 3600
    event_retention: int = 7 * 24 * 3600
    queue: str = "hookbird"
    redis_timeout: float = 2.0
    retry_after: int = 30
    subscription_cache_ttl: float = 5.0
    log_level: str = "info"
    log_each_push: bool = False
    log_format: str = "auto"
    data_dir: Path = Path(".hookbird")
    host: str = "127.0.0.1"
    port: int = 8000
    moneybird_api_token: str | None = field(default=None, repr=False)
    moneybird_api_url: str = "https://moneybird.com/api/v2"
    secret_key: str | None = field(default=None, repr=False)
    rate_limit: int = 150
    reports_rate_limit: int = 50
    rate_window: float = 300.0
    rate_margin: float = 0.25
    rate_slack: float = 1.0
    rate_scope: str = "credential"
    api_timeout: float = 30.0
    api_retries: int = 3
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = field(default=None, repr=False)
    oauth_redirect_uri: str = "urn:ietf:wg:oauth:2.0:oob"
    oauth_scopes: tuple[str, ...] = ("sales_invoices", "documents", "settings")
    oauth_url: str = "https://moneybird.com/oauth"
    handlers: tuple[str, ...] = ()
    #: True: every installed plugin; False: none; names: only those entry points.
    entry_points: bool | tuple[str, ...] = True
    worker_class: str = "simple"
    max_attempts: int = 8
    retry_base: float = 60.0
    shutdown_grace: float = 25.0
    worker_liveness: float = 30.0

    def __post_init__(self) -> None:
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
            parse = _PARSERS.get(setting.attr)
            kwargs[setting.attr] = parse(setting.env, raw) if parse else raw.strip()
        return cls(**kwargs)

    def secrets(self) -> tuple[str, ...]:
        """Every configured secret value, so log scrubbing can blank them wherever they appear."""
        found = [
            self.webhook_token,
            self.moneybird_api_token,
            self.secret_key,
            self.oauth_client_secret,
        ]
        found.extend(self.webhook_secrets)
        return tuple(s for s in found if s)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (tests and the CLI's flags use this)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Settings(**current)


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
