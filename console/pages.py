"""What the console's pages show, read from Redis: synchronous, run in a thread per request.

Recent pushes come from the receiver's time index (``hookbird:events``, event id →
received-at), newest first, a chunk of ids at a time with each chunk's rows read in
one round trip (``workers.admin.rows``). A page stops when it is full or after
:data:`SCAN_LIMIT` pushes examined, whichever comes first, and hands back a cursor
(the received-at of the last push examined) for the next page: a filter that matches
few pushes costs a bounded amount of work per page however many are stored, and the
page says how far back it has looked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from rq.registry import FailedJobRegistry

from hookbird import catalog, keys
from hookbird.settings import Settings
from hookbird.subscriptions import Subscription, SubscriptionStore
from workers.admin import EventRow, get_event, pretty_json, raw_push, rows
from workers.states import Status
from workers.store import text

#: Pushes shown on one page of the list.
PAGE_SIZE = 50
#: Most pushes one page examines for its filters before it stops and offers the next.
SCAN_LIMIT = 1000
#: Ids read from the time index per round trip.
CHUNK = 200
#: Pushes the lag chart draws: the newest ones.
LAG_SAMPLE = 200
#: Most administrations whose budget the health page looks up.
BUDGET_KEYS = 50

#: What the outcome filter offers, in the order of a push's life.
OUTCOMES = tuple(s.value for s in Status)


@dataclass(frozen=True)
class Filters:
    """The list's filters, as the form sends them; empty means no filter."""

    action: str = ""
    entity: str = ""
    administration: str = ""
    outcome: str = ""
    since: float | None = None
    until: float | None = None

    @classmethod
    def from_query(cls, query: dict[str, str]) -> Filters:
        """Read the form; a time that is no ISO date/time is ignored, with no error page."""
        outcome = query.get("outcome", "").strip()
        return cls(
            action=query.get("action", "").strip(),
            entity=query.get("entity", "").strip(),
            administration=query.get("administration", "").strip(),
            outcome=outcome if outcome in OUTCOMES else "",
            since=_moment(query.get("since", "")),
            until=_moment(query.get("until", "")),
        )

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for the next page's link)."""
        found = {
            "action": self.action,
            "entity": self.entity,
            "administration": self.administration,
            "outcome": self.outcome,
            "since": form_time(self.since),
            "until": form_time(self.until),
        }
        return {k: v for k, v in found.items() if v}

    def match(self, row: EventRow) -> bool:
        if self.action and not catalog.matches(self.action, row.action):
            return False
        if self.entity and not _entity_matches(self.entity, row):
            return False
        if self.administration and row.administration_id != self.administration:
            return False
        return not self.outcome or row.status == self.outcome


def _entity_matches(wanted: str, row: EventRow) -> bool:
    """``Contact``, ``contact 456`` or just ``456``: the entity type, id, or both."""
    parts = wanted.split()
    if len(parts) == 2:
        return parts[0].lower() == row.entity_type.lower() and parts[1] == row.entity_id
    return wanted.lower() == row.entity_type.lower() or wanted == row.entity_id


def _moment(value: str) -> float | None:
    """An ISO date/time (a ``datetime-local`` input's value), read as UTC unless it says."""
    value = value.strip()
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def form_time(epoch: float | None) -> str:
    """A time as a ``datetime-local`` input holds it (UTC, to the second)."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: pushes received at ``score`` or earlier, past the first ``skip``
    of those received exactly at ``score`` (pushes may share a receipt time)."""

    score: float
    skip: int = 0

    def __str__(self) -> str:
        return f"{self.score!r}~{self.skip}"

    @classmethod
    def parse(cls, value: str) -> Cursor | None:
        score, _, skip = value.partition("~")
        try:
            return cls(float(score), max(0, int(skip or 0)))
        except ValueError:
            return None


@dataclass(frozen=True)
class Page:
    """One page of the list: its rows, and where the next page starts (None: no more)."""

    rows: list[EventRow]
    examined: int
    next: Cursor | None
    reached: float | None = None  # received-at of the oldest push examined


def page(
    connection: redis.Redis,
    filters: Filters,
    *,
    start: Cursor | None = None,
    size: int = PAGE_SIZE,
    scan_limit: int = SCAN_LIMIT,
) -> Page:
    """The newest ``size`` pushes from ``start`` on that match ``filters``; at most
    ``scan_limit`` pushes are read, in chunks of :data:`CHUNK` per round trip."""
    high = "+inf" if filters.until is None else repr(filters.until)
    skip = 0
    if start is not None and (filters.until is None or start.score <= filters.until):
        high, skip = repr(start.score), start.skip
    low = "-inf" if filters.since is None else repr(filters.since)
    filtered = bool(filters.action or filters.entity or filters.administration or filters.outcome)
    found: list[EventRow] = []
    examined = 0
    cursor: Cursor | None = None
    while len(found) < size and examined < scan_limit:
        want = min(CHUNK if filtered else size - len(found), scan_limit - examined)
        got: list[tuple[bytes, float]] = connection.zrevrangebyscore(  # type: ignore[assignment]
            keys.EVENTS_INDEX, high, low, start=skip, num=want, withscores=True
        )
        if not got:
            return Page(found, examined, None, cursor.score if cursor else None)
        read = rows(connection, [text(raw) for raw, _ in got])
        for (_, raw_score), row in zip(got, read, strict=True):
            examined += 1
            score = float(raw_score)
            if cursor is not None and score == cursor.score:
                cursor = Cursor(score, cursor.skip + 1)
            else:  # the first push seen at this time: skip those before it at the same time
                cursor = Cursor(score, 1 + (skip if repr(score) == high else 0))
            if row is not None and filters.match(row):
                found.append(row)
                if len(found) >= size:
                    break
        assert cursor is not None
        high, skip = repr(cursor.score), cursor.skip
    more = bool(
        cursor
        and connection.zrevrangebyscore(
            keys.EVENTS_INDEX, repr(cursor.score), low, start=cursor.skip, num=1
        )
    )
    return Page(found, examined, cursor if more else None, cursor.score if cursor else None)


@dataclass(frozen=True)
class Step:
    """One line of a push's timeline: received, a handler's attempt, dead letter, retry."""

    at: float
    what: str
    handler: str = ""
    status: str = ""
    ms: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Timeline:
    """One push: its row, the stored push (secrets blanked), and what happened to it."""

    row: EventRow
    meta: dict[str, str]
    body: str
    steps: list[Step]
    tracebacks: dict[str, str]
    dead_lettered: bool

    @property
    def can_replay(self) -> bool:
        return self.row.status not in (Status.QUEUED, Status.RUNNING)


def timeline(connection: redis.Redis, queue: str, event_id: str) -> Timeline | None:
    """The push ``event_id`` as its page shows it; None when it is not stored (any more)."""
    row = get_event(connection, event_id)
    if row is None:
        return None
    push = raw_push(connection, event_id)
    steps = [Step(row.received_at, "received")]
    tracebacks: dict[str, str] = {}
    for name, record in row.handlers.items():
        for attempt in record.get("history") or [record]:  # records older than histories
            ms = attempt.get("ms")
            steps.append(
                Step(
                    float(attempt.get("at") or 0),
                    "handler",
                    handler=name,
                    status=str(attempt.get("status") or ""),
                    ms=float(ms) if isinstance(ms, int | float) else None,
                    error=str(attempt.get("error") or attempt.get("reason") or ""),
                )
            )
        if record.get("traceback"):
            tracebacks[name] = str(record["traceback"])
    registry = FailedJobRegistry(queue, connection=connection)
    dead = connection.zscore(registry.key, event_id) is not None
    if row.status == Status.DEAD:
        steps.append(Step(row.updated_at, "dead-lettered", error=row.error))
    elif row.status == Status.RETRYING and row.next_attempt_at:
        steps.append(Step(row.next_attempt_at, "retry due", error=row.error))
    steps.sort(key=lambda step: step.at)
    return Timeline(
        row=row,
        meta={k: str(v) for k, v in sorted(push["meta"].items())},
        body=pretty_json(push["body"]),
        steps=steps,
        tracebacks=tracebacks,
        dead_lettered=dead,
    )


@dataclass(frozen=True)
class LagPoint:
    received_at: float
    seconds: float
    status: str


def lag(connection: redis.Redis, sample: int = LAG_SAMPLE) -> list[LagPoint]:
    """Receipt to the end of the last run, for those of the newest ``sample`` pushes that ran."""
    ids = [text(i) for i in connection.zrevrange(keys.EVENTS_INDEX, 0, sample - 1)]
    points = [
        LagPoint(r.received_at, max(0.0, r.updated_at - r.received_at), r.status)
        for r in rows(connection, ids)
        if r is not None and r.updated_at and r.received_at
    ]
    return sorted(points, key=lambda p: p.received_at)


@dataclass(frozen=True)
class QueueState:
    waiting: int
    oldest_age: float | None  # seconds since the oldest waiting push was received
    dead_letter: int
    last_received: float | None  # when the newest stored push arrived


def queue_state(connection: redis.Redis, queue: str, now: float | None = None) -> QueueState:
    """How many pushes wait in RQ's queue, how old the oldest is, the dead letter's size."""
    registry = FailedJobRegistry(queue, connection=connection)
    with connection.pipeline(transaction=False) as pipe:
        pipe.llen(keys.rq_queue_key(queue))
        pipe.lindex(keys.rq_queue_key(queue), 0)
        pipe.zcard(registry.key)
        pipe.zrevrange(keys.EVENTS_INDEX, 0, 0, withscores=True)
        waiting, oldest, dead, newest = pipe.execute()
    age = None
    if oldest is not None:
        received = connection.zscore(keys.EVENTS_INDEX, text(oldest))
        if received is not None:
            age = max(0.0, (time.time() if now is None else now) - float(received))
    last = float(newest[0][1]) if newest else None
    return QueueState(int(waiting), age, int(dead), last)


@dataclass(frozen=True)
class BudgetLine:
    """One credential's Moneybird budget (``global``, ``token:<digest>`` or an administration)."""

    key: str
    remaining: int
    limit: int
    held_until: float | None
    waiting: int


def budget(connection: redis.Redis, settings: Settings) -> list[BudgetLine]:
    """The general API budget of each credential the console can name that has been used
    within the window: the shared ``global`` one, ``MONEYBIRD_API_TOKEN``'s, and the OAuth
    budget of every administration in the webhook store or among the newest pushes.
    Named, not searched for: a scan of every key would grow with the store."""
    # hookbird.moneybird's package loads the HTTP client: imported here, for this page only.
    from hookbird.moneybird.budget import PREFIX, BudgetConfig, RedisBudget
    from hookbird.moneybird.oauth import token_key

    config = BudgetConfig(
        limit=settings.rate_limit,
        reports_limit=settings.reports_rate_limit,
        window=settings.rate_window,
        margin=settings.rate_margin,
    )
    names = ["global"]
    if settings.moneybird_api_token:
        names.append(token_key(settings.moneybird_api_token))
    administrations = {s.administration_id for s in webhooks(connection)}
    newest = [text(i) for i in connection.zrevrange(keys.EVENTS_INDEX, 0, LAG_SAMPLE - 1)]
    administrations |= {r.administration_id for r in rows(connection, newest) if r is not None}
    names += sorted(f"administration:{a}" for a in administrations if a)[:BUDGET_KEYS]
    head = f"{PREFIX}api:"
    with connection.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.exists(f"{head}{name}", f"{head}{name}:hold")
        used = pipe.execute()
    shared = RedisBudget(connection, config)
    lines = []
    now = time.time()
    for name, exists in zip(names, used, strict=True):
        if not exists:
            continue
        hold = connection.get(f"{head}{name}:hold")
        held = float(hold) / 1000 if hold is not None else None
        lines.append(
            BudgetLine(
                key=name,
                remaining=shared.remaining(name, "/contacts.json"),
                limit=config.limit,
                held_until=held if held is not None and held > now else None,
                waiting=int(connection.zcard(f"{head}{name}:waiting")),
            )
        )
    return lines


def webhooks(connection: redis.Redis) -> list[Subscription]:
    """The webhook store's entries, signing secrets left sealed."""
    return SubscriptionStore(connection).list(decrypt=False)
