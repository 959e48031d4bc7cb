"""Helpers for testing handlers without a worker, a Redis or Moneybird, as ``structlog.testing``.

A handler is a function of an :class:`~hookbird.Event` and a :class:`~hookbird.Context`,
so a unit test builds both and calls it. :func:`make_event` fills every field of an
Event the way the worker would (IDs as ``str``, ``entity_id``, ``state`` and ``version``
taken from the entity); :func:`make_context` builds the Context around it; and
:class:`FakeMoneybird` is an ``httpx2`` transport that answers like Moneybird, so
``ctx.moneybird`` is hookbird's real client, with its paths, wrapped bodies, pagination
and errors, talking to records the test put there::

    moneybird = FakeMoneybird()
    event = make_event("sales_invoice_state_changed_to_paid", entity=moneybird.add(
        "sales_invoices", {"invoice_id": "2026-0001", "state": "paid"}))
    mark_paid(event, make_context(event, moneybird=moneybird))
    assert moneybird.count("GET", "/sales_invoices/") == 1

hookbird's own tests serve the same FakeMoneybird on a real socket
(``tests/fake_moneybird.py``), with OAuth and signed pushes added. Nothing in hookbird's
processes imports this module, and it imports no test framework.
"""

from __future__ import annotations

import itertools
import json
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, NamedTuple

import httpx2
from redis import Redis

from hookbird import catalog, keys
from hookbird.context import Context
from hookbird.events import Event
from hookbird.logs import get_logger
from hookbird.moneybird import Client
from hookbird.moneybird.filters import THIS_YEAR_DEFAULT
from hookbird.redis_url import sync_client
from hookbird.routing import handler_name
from hookbird.settings import Settings

__all__ = [
    "ADMINISTRATION",
    "API_URL",
    "TOKEN",
    "WEBHOOK_ID",
    "Call",
    "FakeMoneybird",
    "make_context",
    "make_event",
]

#: The administration every helper uses unless told otherwise.
ADMINISTRATION = "123456789012345678"
#: The personal API token :class:`FakeMoneybird` accepts unless given others.
TOKEN = "fake-personal-token-0123456789"  # noqa: S105 (accepted only by the fake)
WEBHOOK_ID = "496081407814140001"
#: Where the fake answers when used as a transport: ``.invalid`` never resolves, so a
#: client that lost its transport fails instead of reaching a real server.
API_URL = "https://moneybird.invalid/api/v2"

#: Resource path → body wrapper; None: bodies are not wrapped (webhooks).
RESOURCES: dict[str, str | None] = {
    "contacts": "contact",
    "sales_invoices": "sales_invoice",
    "estimates": "estimate",
    "documents/purchase_invoices": "purchase_invoice",
    "documents/receipts": "receipt",
    "documents/typeless_documents": "typeless_document",
    "time_entries": "time_entry",
    "products": "product",
    "projects": "project",
    "ledger_accounts": "ledger_account",
    "tax_rates": "tax_rate",
    "webhooks": None,
}
UNPAGINATED = {"ledger_accounts", "webhooks"}
# Words that make an event group a kind of change rather than a kind of entity
# (``sales_invoice_state_changed`` is about a SalesInvoice).
_CHANGE_WORDS = frozenset({"state", "changed", "marked", "mark", "send", "revert", "from"})

_ids = itertools.count(496081407814141080, 7919)
_ids_lock = threading.Lock()


def _new_id() -> str:
    with _ids_lock:
        return str(next(_ids))


def _entity_type_of(action: str) -> str | None:
    """The entity type Moneybird names for an action: ``sales_invoice_paid…`` → ``SalesInvoice``.

    Taken from the longest official event group the action starts with that names a
    thing, not a change; None when no group fits.
    """
    fitting = [
        group
        for group in catalog.groups()
        if catalog.matches(group, action) and not _CHANGE_WORDS & set(group.split("_"))
    ]
    if not fitting:
        return None
    return "".join(word.capitalize() for word in max(fitting, key=len).split("_"))


def make_event(
    action: str,
    *,
    entity: Mapping[str, Any] | None = None,
    administration_id: str | int = ADMINISTRATION,
    entity_type: str | None = None,
    entity_id: str | int | None = None,
    state: str | None = None,
    webhook_id: str | None = WEBHOOK_ID,
    event_id: str | None = None,
    version: int | None = None,
    received_at: float | None = None,
    idempotency_key: str | None = None,
    attempt: int = 1,
    source: str = "push",
    own_write: bool = False,
) -> Event:
    """An Event as a worker would build it from a push; every field has a default.

    ``entity`` is the JSON Moneybird would send (default: ``{"id": entity_id}``);
    ``entity_id``, ``state`` and ``version`` are taken from it unless given, and
    ``entity_type`` from the action (pass it for types the guess gets wrong). IDs
    become ``str``, as Moneybird's 64-bit integers do in hookbird.
    """
    if entity is None:
        body: dict[str, Any] = {"id": str(entity_id) if entity_id is not None else _new_id()}
        if state is not None:
            body["state"] = state
    else:
        body = dict(entity)
    if entity_id is None and body.get("id") not in (None, ""):
        entity_id = body["id"]
    if state is None and isinstance(body.get("state"), str):
        state = body["state"]
    if version is None and isinstance(body.get("version"), int):
        version = int(body["version"])
    now = time.time() if received_at is None else received_at
    return Event(
        event_id=event_id or keys.new_event_id(now),
        administration_id=str(administration_id),
        webhook_id=webhook_id,
        action=action,
        entity_type=entity_type or _entity_type_of(action),
        entity_id=None if entity_id is None else str(entity_id),
        state=state,
        entity=body,
        version=version,
        received_at=now,
        idempotency_key=idempotency_key or secrets.token_hex(16),
        attempt=attempt,
        source=source,
        own_write=own_write,
    )


def make_context(
    event: Event | None = None,
    *,
    moneybird: Any = None,
    handler: str | Callable[..., Any] = "tests:handler",
    settings: Settings | None = None,
    redis: Redis | None = None,
    log: Any = None,
) -> Context:
    """The Context a worker would hand a handler for ``event`` (default: a made one).

    ``moneybird`` decides ``ctx.moneybird``: a :class:`FakeMoneybird` gives hookbird's
    client on that fake, a :class:`~hookbird.moneybird.Client` gives that client, any
    other object is ``ctx.moneybird`` itself, and None makes ``ctx.moneybird`` raise as
    a worker without credentials would. ``handler`` (the function or its
    ``module:function`` name) fixes ``ctx.idempotency_key`` as in production.
    ``settings`` defaults to ``Settings()`` (the defaults, not the environment);
    ``redis`` to a client for ``settings.redis_url`` that connects only when used.
    """
    event = event or make_event("contact_changed")
    settings = settings or Settings()
    name = handler if isinstance(handler, str) else handler_name(handler)
    if redis is None:
        redis = sync_client(settings.redis_url or "redis://127.0.0.1:6379/0")
    if log is None:
        log = get_logger("hookbird.worker").bind(
            event_id=event.event_id,
            action=event.action,
            administration_id=event.administration_id,
            handler=name,
        )
    return Context(
        event=event,
        handler=name,
        settings=settings,
        redis=redis,
        log=log,
        moneybird_factory=_moneybird_factory(moneybird, settings),
    )


def _moneybird_factory(moneybird: Any, settings: Settings) -> Callable[[str], Any] | None:
    """What builds ``ctx.moneybird`` from :func:`make_context`'s ``moneybird``."""
    if moneybird is None:
        return None
    if isinstance(moneybird, FakeMoneybird):
        fake = moneybird
        return lambda administration_id: fake.client(settings).administration(administration_id)
    if isinstance(moneybird, Client):
        return moneybird.administration
    return lambda _administration_id: moneybird


_DATE_FIELDS = ("invoice_date", "date", "estimate_date", "started_at")


def _period_span(period: str, today: date) -> tuple[date, date]:
    """First and last day of a named period (``this_year``, ``prev_month``, …) or a
    ``YYYYMMDD..YYYYMMDD``/``YYYYMM..YYYYMM`` range (calendar periods: the fake's
    financial year is the calendar year); :class:`_BadFilter` for anything else."""
    try:
        if ".." in period:
            start, end = period.split("..")
            if len(start) == len(end) == 6:
                first = datetime.strptime(start, "%Y%m").date()
                return first, _month_end(datetime.strptime(end, "%Y%m").date())
            if len(start) == len(end) == 8:
                parse = datetime.strptime
                return parse(start, "%Y%m%d").date(), parse(end, "%Y%m%d").date()
            raise ValueError(period)
        when, _, unit = period.partition("_")
        step = {"prev": -1, "this": 0, "next": 1}[when]
        if unit == "week":
            monday = today - timedelta(days=today.weekday()) + timedelta(weeks=step)
            return monday, monday + timedelta(days=6)
        months = {"month": 1, "quarter": 3, "year": 12}[unit]
    except (KeyError, ValueError):
        raise _BadFilter(f"period {period!r} is not a period this fake knows") from None
    index = today.year * 12 + (today.month - 1) // months * months + step * months
    first = date(index // 12, index % 12 + 1, 1)
    end_index = index + months - 1
    return first, _month_end(date(end_index // 12, end_index % 12 + 1, 1))


def _month_end(first: date) -> date:
    following = first.replace(day=28) + timedelta(days=4)
    return following - timedelta(days=following.day)


class Call(NamedTuple):
    """One API request the fake answered: ``("GET", "/123/contacts/4.json", {}, None)``."""

    method: str
    path: str  # below the API's base, with its .json suffix
    params: dict[str, str]
    body: Any  # decoded JSON, raw bytes (uploads) or None


def _iso(epoch: float) -> str:
    """``2026-12-06T10:34:13.000Z``, as Moneybird writes times."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=body, headers=headers)


def _error(status: int, message: Any, symbolic: Any = None) -> httpx2.Response:
    body: dict[str, Any] = {"error": message}
    if symbolic is not None:
        body["symbolic"] = symbolic
    return _json(status, body)


@dataclass
class _Window:
    limit: int
    window: float
    hits: deque[float] = field(default_factory=deque)

    def trim(self, now: float) -> None:
        while self.hits and self.hits[0] <= now - self.window:
            self.hits.popleft()

    def headers(self, now: float) -> dict[str, str]:
        self.trim(now)
        reset = self.hits[0] + self.window if self.hits else now + self.window
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(0, self.limit - len(self.hits))),
            "RateLimit-Reset": str(math.ceil(reset)),
        }


class _BadFilter(ValueError):
    """A ``filter`` query Moneybird would refuse (400)."""


def _filter_terms(raw: str | None) -> dict[str, str] | None:
    """``"period:this_year,state:all"`` → its terms; None when no filter was given."""
    if raw is None:
        return None
    terms = {}
    for term in raw.split(","):
        key, colon, value = term.partition(":")
        if not colon or not key:
            raise _BadFilter(f"filter term {term!r} is not key:value")
        terms[key.strip()] = value.strip()
    return terms


def _updated_at(record: Mapping[str, Any]) -> float:
    """When a record last changed, in epoch seconds: its ``updated_at``, else its version
    (Moneybird's versions are the epoch second of the change)."""
    stamp = record.get("updated_at")
    if isinstance(stamp, str):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    return float(record.get("version") or 0)


def _visible(resource: str, records: list[dict[str, Any]], params: Mapping[str, str]) -> list[Any]:
    """The records a list or synchronization GET shows, as Moneybird filters them.

    Where Moneybird lists only this year by default (``THIS_YEAR_DEFAULT``), only this
    year's records show unless the ``filter`` names a ``period``. The spec says any
    filter replaces the defaults; the fake holds to the stricter reading, that other
    keys leave the period as it was, so code that forgets the period fails here either
    way. A record is dated by its first field of :data:`_DATE_FIELDS`; an undated one
    (a draft) shows when today is in the period. ``state`` and ``…_id`` keys (with
    ``|`` alternatives, ``all``) compare with the record's field; ``updated_after``
    (ISO 8601, exclusive) narrows by last change; other keys are ignored. Archived
    contacts show only with ``include_archived=true``.
    """
    terms = _filter_terms(params.get("filter")) or {}
    today = datetime.now(UTC).date()
    shown = records
    period = terms.get("period") or ("this_year" if resource in THIS_YEAR_DEFAULT else None)
    if period:
        first, last = _period_span(period, today)
        kept = []
        for record in shown:
            raw = next((record[k] for k in _DATE_FIELDS if record.get(k)), None)
            day = date.fromisoformat(str(raw)[:10]) if raw else today
            if first <= day <= last:
                kept.append(record)
        shown = kept
    shown = [
        record
        for record in shown
        if all(
            value == "all" or str(record.get(key)) in value.split("|")
            for key, value in terms.items()
            if key == "state" or key.endswith("_id")
        )
    ]
    after = terms.get("updated_after")
    if after:
        try:
            since = datetime.fromisoformat(after.replace("Z", "+00:00")).timestamp()
        except ValueError:
            raise _BadFilter(f"updated_after {after!r} is not an ISO 8601 time") from None
        shown = [r for r in shown if _updated_at(r) > since]
    if resource == "contacts" and params.get("include_archived") not in ("true", "1"):
        shown = [r for r in shown if not r.get("archived")]
    return shown


class FakeMoneybird(httpx2.BaseTransport):
    """An ``httpx2`` transport that answers like Moneybird's API, strictly.

    - ``Authorization: Bearer`` with one of ``tokens``; paths end in ``.json``; IDs are
      64-bit numbers as strings; bodies wrapped (``{"contact": {...}}``) except webhooks;
    - list endpoints paginate with ``page``/``per_page`` (≤ 100) and a ``Link`` header,
      never a total; synchronization endpoints (GET ids + versions, POST ≤ 100 ids);
    - a sliding-window rate limit per token (``limit_by="ip"``: one for all tokens; and a
      stricter one for ``/reports/``) with
      Moneybird's headers on every answer and ``429 Retry later`` with an epoch
      ``Retry-After`` when spent;
    - 5xx bursts on demand (:meth:`fail_next`);
    - records change (:meth:`change`, or a PATCH: a new ``version``) and disappear
      (:meth:`remove`, or a DELETE); list and synchronization GETs of invoices,
      estimates and documents show only ``this_year`` unless a ``filter`` names another
      ``period``, ``state``/``…_id``/``updated_after`` narrow them, archived contacts
      need ``include_archived=true`` (see ``_visible``);
    - webhooks with ``last_http_status`` and ``deactivated_at`` (``activate`` /
      ``deactivate``); :meth:`set_webhook` changes them as Moneybird would after
      failed deliveries;
    - downloads (``download_pdf``, ``download_packing_slip_pdf``) answered with a 302 to
      the file under ``/files/`` on :attr:`storage_url` (default: the API's own origin;
      another host, as Moneybird's storage is, must never get the token: see
      :attr:`file_requests`); ``download_padding`` bytes make the files large.

    Put records in with :meth:`add`, read them back with :meth:`record`, and assert on
    :attr:`requests` (every :class:`Call` answered) or :meth:`count`. Thread-safe.
    """

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] = (TOKEN,),
        administrations: tuple[str, ...] = (ADMINISTRATION,),
        limit: int = 150,
        window: float = 300.0,
        reports_limit: int = 50,
        limit_by: Literal["token", "ip"] = "token",
    ) -> None:
        self.tokens = set(tokens)
        # "ip": one window for every token, as if Moneybird counted per IP address.
        self.limit_by = limit_by
        self.administrations = {
            a: {"id": a, "name": f"Administration {a}"} for a in administrations
        }
        self.limit, self.window, self.reports_limit = limit, window, reports_limit
        self.records: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.requests: list[Call] = []
        self.stats: Counter[str] = Counter()
        self.api_url = API_URL
        self.storage_url: str | None = None  # origin downloads redirect to
        self.download_padding = 0  # bytes added to every file (large downloads)
        self.file_requests: list[tuple[str, bool]] = []  # (path, came with a token)
        self._windows: dict[tuple[str, str], _Window] = {}
        self._fail: deque[int] = deque()
        self._lock = threading.RLock()

    # -- control from tests ---------------------------------------------------------

    def new_id(self) -> str:
        """A fresh Moneybird-style id (a 64-bit number, as a string)."""
        return _new_id()

    def add(
        self, resource: str, record: dict[str, Any], administration: str = ADMINISTRATION
    ) -> dict[str, Any]:
        """Store a record directly (no request, no budget); returns it with id and version.

        ``resource`` is the API path (``contacts``, ``sales_invoices``,
        ``documents/receipts``); ``record`` may bring its own ``id`` and ``version``.
        """
        stored = {
            "id": self.new_id(),
            "administration_id": administration,
            "version": int(time.time()),
            **record,
        }
        stored["id"] = str(stored["id"])
        with self._lock:
            self.records.setdefault((administration, resource), {})[stored["id"]] = stored
        return stored

    def record(
        self, resource: str, id: str | int, administration: str = ADMINISTRATION
    ) -> dict[str, Any] | None:
        """The stored record as it is now (after the requests it answered), or None."""
        return self.records.get((administration, resource), {}).get(str(id))

    def change(
        self, resource: str, id: str | int, administration: str = ADMINISTRATION, **fields: Any
    ) -> dict[str, Any]:
        """Change a stored record as a user in Moneybird would: ``fields`` set, a new
        ``version`` (later than the last) and ``updated_at``. Returns a copy of it."""
        with self._lock:
            record = self.records[(administration, resource)][str(id)]
            now = time.time()
            record.update(fields)
            record["version"] = max(int(record.get("version") or 0) + 1, int(now))
            record["updated_at"] = _iso(now)
            return dict(record)

    def remove(self, resource: str, id: str | int, administration: str = ADMINISTRATION) -> None:
        """Delete a stored record, as a user in Moneybird would (no request, no budget)."""
        with self._lock:
            del self.records[(administration, resource)][str(id)]

    def set_webhook(
        self, id: str | int, administration: str = ADMINISTRATION, **fields: Any
    ) -> dict[str, Any]:
        """Change a webhook's ``last_http_status``, ``deactivated_at`` …; a copy of it."""
        with self._lock:
            hook = self.records[(administration, "webhooks")][str(id)]
            hook.update(fields)
            return dict(hook)

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` API requests with ``status`` (a 5xx burst)."""
        with self._lock:
            self._fail.extend([status] * count)

    def count(self, method: str, path_part: str) -> int:
        """How many ``method`` requests had ``path_part`` in their path."""
        return sum(1 for call in self.requests if call.method == method and path_part in call.path)

    def client(self, settings: Settings | None = None, **kwargs: Any) -> Client:
        """hookbird's Moneybird client on this fake, as a worker builds it (no sleeping
        between retries; ``kwargs`` go to :class:`~hookbird.moneybird.Client`)."""
        kwargs.setdefault("token", next(iter(sorted(self.tokens)), None))
        kwargs.setdefault("base_url", self.api_url)
        kwargs.setdefault("sleep", lambda _seconds: None)
        return Client(settings or Settings(), transport=self, on_budget="raise", **kwargs)

    # -- hooks for a fake that does more ---------------------------------------------

    def token_valid(self, token: str) -> bool:
        """Is ``token`` a valid bearer token right now? (Override to add OAuth tokens.)"""
        return any(secrets.compare_digest(token, t) for t in self.tokens)

    def webhook_created(self, hook: dict[str, Any]) -> None:
        """Called after a webhook was created, outside the lock (Moneybird then sends a
        ``test_webhook`` push to its URL; this fake sends nothing)."""

    # -- the transport ----------------------------------------------------------------

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        """Answer one request: ``…/api/v2/…`` (the API) and ``/files/…`` (downloads)."""
        request.read()
        path = request.url.path
        if path.startswith("/files/"):
            name = path.removeprefix("/files/")
            with self._lock:
                self.file_requests.append((path, "authorization" in request.headers))
            return httpx2.Response(
                200,
                content=b"%PDF-1.4 fake " + name.encode() + b"\n" + b"0" * self.download_padding,
                headers={"Content-Type": "application/pdf"},
            )
        _, found, rest = path.partition("/api/v2/")
        if not found:
            return _error(404, "Not found")
        with self._lock:
            response = self._api(request, "/" + rest)
        hook = response.extensions.get("created_webhook")
        if hook is not None:
            self.webhook_created(hook)  # outside the lock: a test push may take a while
            kept = {k: v for k, v in response.headers.items() if k.lower().startswith("ratelimit")}
            response = _json(201, hook, kept)  # with what the hook changed (last_http_status)
        return response

    def _bearer(self, request: httpx2.Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return token if self.token_valid(token) else None

    def _limit(self, token: str, path: str) -> tuple[bool, dict[str, str]]:
        now = time.time()
        buckets = [("api", self.limit)]
        if "/reports/" in path:
            buckets.append(("reports", self.reports_limit))
        counted = token if self.limit_by == "token" else "ip"
        windows = [
            self._windows.setdefault((name, counted), _Window(limit, self.window))
            for name, limit in buckets
        ]
        for w in windows:
            w.trim(now)
        allowed = all(len(w.hits) < w.limit for w in windows)
        if allowed:
            for w in windows:
                w.hits.append(now)
        headers = windows[-1].headers(now)
        if not allowed:
            full = [w for w in windows if len(w.hits) >= w.limit]
            headers["Retry-After"] = str(
                math.ceil(max(w.hits[len(w.hits) - w.limit] for w in full) + self.window)
            )
        return allowed, headers

    def _api(self, request: httpx2.Request, path: str) -> httpx2.Response:
        self.stats["requests"] += 1
        token = self._bearer(request)
        if token is None:
            self.stats["unauthorized"] += 1
            return _error(401, "Token is invalid or expired")
        allowed, rate = self._limit(token, path)
        if not allowed:
            self.stats["rate_limited"] += 1
            return httpx2.Response(429, text="Retry later", headers=rate)
        raw = request.content
        body = (
            json.loads(raw)
            if raw and request.headers.get("content-type", "").startswith("application/json")
            else (raw or None)
        )
        params = dict(request.url.params.multi_items())
        self.requests.append(Call(request.method, path, params, body))
        if self._fail:
            self.stats["failed"] += 1
            return httpx2.Response(self._fail.popleft(), text="Internal Server Error", headers=rate)
        response = self._route(request, path, body)
        response.headers.update(rate)
        return response

    def _route(self, request: httpx2.Request, path: str, body: Any) -> httpx2.Response:
        if not path.endswith(".json"):
            return _error(404, "Unknown format: use the .json suffix")
        parts = path[1:-5].split("/")
        if parts == ["administrations"]:
            return _json(200, list(self.administrations.values()))
        administration, rest = parts[0], parts[1:]
        if administration not in self.administrations:
            return _error(404, "Administration not found")
        if rest[:1] == ["reports"]:
            return _json(200, {"report": "/".join(rest[1:])})
        resource = next(
            (r for r in sorted(RESOURCES, key=len, reverse=True) if "/".join(rest).startswith(r)),
            None,
        )
        if resource is None:
            return _error(404, "record not found")
        tail = rest[len(resource.split("/")) :]
        records = self.records.setdefault((administration, resource), {})
        method = request.method
        if method == "GET" and tail in ([], ["synchronization"]):
            try:
                shown = _visible(resource, list(records.values()), request.url.params)
            except _BadFilter as exc:
                return _error(400, str(exc), {"filter": "invalid"})
            if tail:
                return _json(200, [{"id": r["id"], "version": r["version"]} for r in shown])
            return self._page(request, shown, paginate=resource not in UNPAGINATED)
        if not tail:
            if method == "POST":
                return self._create(administration, resource, records, body)
        elif tail == ["synchronization"]:
            if method == "POST":
                ids = body.get("ids") if isinstance(body, dict) else None
                if not isinstance(ids, list):
                    return _error(400, "ids is required", {"ids": "required"})
                if len(ids) > 100:
                    return _error(400, "at most 100 ids per request", {"ids": "too_many"})
                return _json(200, [records[str(i)] for i in ids if str(i) in records])
        else:
            record = records.get(tail[0])
            if record is None:
                return _error(404, "record not found", {"id": "not_found"})
            action = tail[1] if len(tail) > 1 else None
            if action is None and method == "GET":
                return _json(200, record)
            if action is None and method == "DELETE":
                del records[tail[0]]
                return httpx2.Response(204)
            if action is None and method == "PATCH":
                wrapper = RESOURCES[resource]
                if not isinstance(body, dict) or wrapper not in body:
                    return _error(400, f"{wrapper} is required", {wrapper: "required"})
                record.update(body[wrapper], version=record["version"] + 1)
                record["updated_at"] = _iso(time.time())
                return _json(200, record)
            if action in ("activate", "deactivate") and method == "PATCH":
                record["deactivated_at"] = None if action == "activate" else time.time()
                return httpx2.Response(204)
            if action in ("download_pdf", "download_packing_slip_pdf") and method == "GET":
                origin = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
                where = f"{self.storage_url or origin}/files/{tail[0]}-{action}.pdf"
                return httpx2.Response(302, headers={"Location": where}, text="moved")
            if method in ("PATCH", "POST"):
                record.setdefault("actions", []).append(action)
                return _json(200, record)
        return _error(405, f"{method} not allowed here")

    def _page(
        self, request: httpx2.Request, items: list[Any], *, paginate: bool
    ) -> httpx2.Response:
        if not paginate:
            return _json(200, items)
        try:
            page = int(request.url.params.get("page", "1"))
            per_page = int(request.url.params.get("per_page", "50"))
        except ValueError:
            return _error(400, "page and per_page must be numbers")
        if not 1 <= per_page <= 100 or page < 1:
            return _error(400, "per_page must be between 1 and 100")
        start = (page - 1) * per_page
        base = str(request.url.copy_with(query=None))
        links = []
        if page > 1:
            links.append(f'<{base}?page={page - 1}&per_page={per_page}>; rel="prev"')
        if start + per_page < len(items):
            links.append(f'<{base}?page={page + 1}&per_page={per_page}>; rel="next"')
        headers = {"Link": ", ".join(links)} if links else {}
        return _json(200, items[start : start + per_page], headers)

    def _create(
        self, administration: str, resource: str, records: dict[str, dict[str, Any]], body: Any
    ) -> httpx2.Response:
        wrapper = RESOURCES[resource]
        if wrapper is None:  # webhooks
            if not isinstance(body, dict) or "events" in body:
                return _error(
                    400,
                    "events is not a permitted parameter, use enabled_events",
                    {"events": "not_permitted"},
                )
            if not body.get("url"):
                return _error(422, {"url": ["can't be blank"]})
            hook = {
                "id": self.new_id(),
                "administration_id": administration,
                "url": body["url"],
                "enabled_events": list(body.get("enabled_events") or []),
                "last_http_status": None,
                "last_http_body": None,
                "token": secrets.token_urlsafe(18),
                "secret": secrets.token_hex(32),
                "deactivated_at": None,
            }
            records[hook["id"]] = hook
            return httpx2.Response(201, json=hook, extensions={"created_webhook": hook})
        if not isinstance(body, dict) or not isinstance(body.get(wrapper), dict):
            return _error(400, f"{wrapper} is required", {wrapper: "required"})
        stored = self.add(resource, body[wrapper], administration)
        return _json(201, stored)
