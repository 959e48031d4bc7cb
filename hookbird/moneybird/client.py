"""The shared Moneybird client: one HTTP pool, one rate budget, typed errors.

:class:`Client` wraps one ``httpx2.Client`` (keep-alive pool, timeouts set here and
nowhere else, ``transport=`` injectable) and owns the policy of every request.
:meth:`Client.send` hands each request down four layers, one concern each, the way
httpx layers ``_send_handling_auth`` → ``_send_handling_redirects`` →
``_send_single_request``:

1. :meth:`~Client._send_handling_retries`: 5xx, timeouts and dropped connections of
   idempotent methods are retried with backoff + jitter a bounded number of times;
   POST and PATCH never are (Moneybird has no idempotency keys): they raise the
   transient error for the job to decide. With ``on_budget="wait"`` a 429 is waited
   out and retried too; both kinds share the one ``retries`` allowance;
2. :meth:`~Client._send_handling_auth`: the bearer token of the administration
   (:mod:`oauth` token sources); a 401 gets one retry with a refreshed token;
3. :meth:`~Client._send_handling_budget`: take a slot from the shared :mod:`budget`
   *before* sending; none free → ``on_budget="raise"`` (workers) raises
   :class:`RateLimited` with ``retry_at`` so the job is rescheduled instead of
   sleeping; ``"wait"`` (CLI) sleeps and says so. Afterwards the budget is reconciled
   with the rate-limit headers, and a 429 holds it until the server's ``Retry-After``
   (and, when the credential's count still had room, widens the budget's scope to one
   bucket for every credential: Moneybird may count per IP address);
4. :meth:`~Client._send_single_request`: one HTTP exchange, its answer mapped to the
   response or to an :mod:`errors` exception.

The client knows paths, never resources: :mod:`resources` builds an administration's
resources on it (``Administration(client, id)``) and adds ``administration(id)`` in
the ``Client`` that :mod:`hookbird.moneybird` exports, so imports run one way,
resources → client. The code generated from Moneybird's spec lives between the
two, in :mod:`hookbird.moneybird._generated`, and imports only this side. The workers
build their client with :meth:`Client.for_worker`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal, Self

import httpx2
import redis

from hookbird.logs import get_logger
from hookbird.metrics import TALLY
from hookbird.moneybird.budget import (
    GLOBAL,
    WIDENED_FOR,
    Budget,
    BudgetConfig,
    LocalBudget,
    RedisBudget,
)
from hookbird.moneybird.credentials import CredentialStore
from hookbird.moneybird.errors import (
    ConnectionFailed,
    MoneybirdError,
    RateLimited,
    ServerError,
    Timeout,
    TransientError,
    Unauthorized,
)
from hookbird.moneybird.filters import build as build_filter
from hookbird.moneybird.oauth import StaticToken, StoredTokens, TokenSource, oauth_app
from hookbird.moneybird.responses import (
    RateHeaders,
    decode_body,
    error_for,
    is_binary,
    next_link,
    stringify_ids,
)
from hookbird.settings import Settings

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Methods whose answer is a record hookbird itself wrote (see ``Client.on_write``).
WRITES = frozenset({"POST", "PATCH", "PUT"})
PER_PAGE = 100

log = get_logger("moneybird.client")


def api_path(path: str) -> str:
    """``/123/contacts/4`` → ``/123/contacts/4.json``: Moneybird wants the format suffix."""
    path = "/" + path.lstrip("/")
    last = path.rsplit("/", 1)[-1]
    return path if "." in last else path + ".json"


def _encoded(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """The query as Moneybird reads it: a dict-valued ``filter`` becomes its
    ``key:value,…`` string (:func:`hookbird.moneybird.filters.build`); the rest as given."""
    if params is None or not isinstance(params.get("filter"), Mapping):
        return params
    return {**params, "filter": build_filter(params["filter"])}


@dataclass(slots=True)
class _Call:
    """One :meth:`Client.send` on its way down the layers, and what it has used up."""

    method: str
    url: str
    shown: str  # the API path errors and logs show
    params: dict[str, Any] | None
    json: Any
    files: Any
    administration_id: str | None
    follow_redirects: bool
    sink: BinaryIO | None  # a successful body is streamed here instead of read
    tokens: TokenSource
    token: str  # the bearer token; replaced once when a 401 gets it refreshed
    retries: int = 0  # retries spent on 5xx, timeouts, dropped connections and 429s
    refreshed: bool = False


class Client:
    """Talks to Moneybird for every administration; see the module docstring."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        token: str | None = None,
        base_url: str | None = None,
        transport: httpx2.BaseTransport | None = None,
        redis: redis.Redis | None = None,
        tokens: TokenSource | None = None,
        budget: Budget | None = None,
        on_budget: Literal["raise", "wait"] = "raise",
        on_wait: Callable[[float], None] | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        settings = settings or Settings()
        self.settings = settings
        timeout = settings.api_timeout if timeout is None else timeout
        self.http = httpx2.Client(
            base_url=(base_url or settings.moneybird_api_url).rstrip("/"),
            transport=transport,
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx2.Limits(max_connections=20, max_keepalive_connections=10),
            headers={"Accept": "application/json", "User-Agent": "hookbird"},
        )
        token = token or settings.moneybird_api_token
        if tokens is None:
            if redis is not None and settings.secret_key:
                tokens = StoredTokens(
                    CredentialStore(redis, settings.secret_key),
                    app=oauth_app(settings),
                    http=self.http,
                    fallback=token,
                )
            elif token:
                tokens = StaticToken(token)
        self.tokens = tokens
        config = BudgetConfig(
            limit=settings.rate_limit,
            reports_limit=settings.reports_rate_limit,
            window=settings.rate_window,
            margin=settings.rate_margin,
            slack=settings.rate_slack,
        )
        if budget is None:
            budget = RedisBudget(redis, config) if redis is not None else LocalBudget(config)
        self.budget = budget
        self.global_budget = settings.rate_scope == "global"
        self.on_budget = on_budget
        self.on_wait = on_wait
        self.retries = settings.api_retries if retries is None else retries
        self._sleep = sleep
        self.calls = 0  # requests sent (benchmarks, tests)
        #: Called with (administration id, record) after a POST, PATCH or PUT answered
        #: with a record: the workers note their own writes (``event.own_write``).
        self.on_write: Callable[[str | None, dict[str, Any]], None] | None = None

    @classmethod
    def for_worker(cls, settings: Settings, redis: redis.Redis, **kwargs: Any) -> Self:
        """The client a worker process shares between jobs: out of budget → RateLimited."""
        return cls(settings, redis=redis, on_budget="raise", **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the unscoped API ----------------------------------------------------------

    def administrations(self) -> list[dict[str, Any]]:
        """The administrations the (default) token can see."""
        found = self.request("GET", "/administrations")
        return list(found) if isinstance(found, list) else []

    # -- requests ---------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        administration_id: str | None = None,
        follow_redirects: bool = True,
    ) -> Any:
        """Send one request; the decoded JSON body (None when empty), or ``bytes`` when
        Moneybird answers with a file (a PDF, an image: any type but JSON and text).

        Redirects are followed (Moneybird sends downloads to its file storage, which
        never gets the token); ``follow_redirects=False`` returns the redirect's body."""
        response = self.send(
            method,
            path,
            params=params,
            json=json,
            files=files,
            administration_id=administration_id,
            follow_redirects=follow_redirects,
        )
        content_type = response.headers.get("content-type")
        if response.content and is_binary(content_type):
            return response.content
        found = stringify_ids(decode_body(response.content, content_type))
        if self.on_write is not None and method.upper() in WRITES and isinstance(found, dict):
            self.on_write(administration_id, found)
        return found

    def paginate(
        self, path: str, params: dict[str, Any] | None = None, *, administration_id: str | None
    ) -> Iterator[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"`` (no totals needed)."""
        query: dict[str, Any] | None = {**(params or {}), "per_page": PER_PAGE}
        url: str | None = api_path(path)
        while url is not None:
            response = self.send("GET", url, params=query, administration_id=administration_id)
            page = decode_body(response.content, response.headers.get("content-type"))
            yield from stringify_ids(page) if isinstance(page, list) else []
            link = next_link(response.headers.get("link"))
            url, query = (self._same_origin(link) if link else None), None

    def _same_origin(self, link: str) -> str:
        """A next-page link on another host is rebased on ours: the token goes nowhere else."""
        target, base = httpx2.URL(link), self.http.base_url
        if (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port):
            return link
        log.warning("moneybird_link_rebased", host=target.host)
        return str(base.copy_with(raw_path=target.raw_path))

    def send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        administration_id: str | None = None,
        follow_redirects: bool = False,
        sink: BinaryIO | None = None,
    ) -> httpx2.Response:
        """Send with retries, auth, budget and error mapping; the raw 2xx response.

        With ``sink``, a successful body is written there as it arrives (large downloads
        never sit in memory; a retry starts the file over) and the response's content
        is left unread. Redirects to another host (Moneybird's file storage) never carry
        the token: httpx2 drops ``Authorization`` when a redirect leaves the origin.
        """
        method = method.upper()
        url = path if path.startswith(("http://", "https://")) else api_path(path)
        shown = self._api_path_of(url)
        if self.tokens is None:
            raise Unauthorized(
                "no Moneybird credentials: set MONEYBIRD_API_TOKEN, or connect an "
                "administration with `hookbird oauth exchange`",
                method=method,
                path=shown,
            )
        call = _Call(
            method=method,
            url=url,
            shown=shown,
            params=_encoded(params),
            json=json,
            files=files,
            administration_id=administration_id,
            follow_redirects=follow_redirects,
            sink=sink,
            tokens=self.tokens,
            token=self.tokens.token_for(administration_id),
        )
        return self._send_handling_retries(call)

    def _send_handling_retries(self, call: _Call) -> httpx2.Response:
        """Send again after a 5xx, a timeout or a dropped connection (idempotent methods
        only), and after a 429 when waiting is allowed; ``retries`` times in all."""
        while True:
            try:
                return self._send_handling_auth(call)
            except RateLimited as error:
                # In "wait" mode only Moneybird's 429 gets here (our own budget waits in
                # _take_slot); in "raise" mode every RateLimited is the job's to reschedule.
                if self.on_budget != "wait" or not error.retry_at or call.retries >= self.retries:
                    raise
                call.retries += 1
                self._wait(error.retry_at)
            except (ServerError, Timeout, ConnectionFailed) as error:
                if call.method not in IDEMPOTENT or call.retries >= self.retries:
                    raise
                call.retries += 1
                delay = min(30.0, 0.5 * 2**call.retries) * random.uniform(0.5, 1.0)
                log.info(
                    "moneybird_retry",
                    method=call.method,
                    path=call.shown,
                    attempt=call.retries,
                    error=type(error).__name__,
                    delay=round(delay, 2),
                )
                self._sleep(delay)

    def _send_handling_auth(self, call: _Call) -> httpx2.Response:
        """On the first 401, ask the token source for a fresh token and send once more."""
        try:
            return self._send_handling_budget(call)
        except Unauthorized as error:
            if call.refreshed:
                raise
            refused = error
        call.refreshed = True
        fresh = call.tokens.after_unauthorized(call.administration_id, call.token)
        if not fresh:
            raise refused
        call.token = fresh
        return self._send_handling_budget(call)

    def _send_handling_budget(self, call: _Call) -> httpx2.Response:
        """Take a budget slot before sending; afterwards tell the budget what Moneybird said."""
        key = (
            GLOBAL
            if self.global_budget or self._widened()
            else call.tokens.budget_key(call.administration_id, call.token)
        )
        self._take_slot(key, call.shown, call.method)
        self.calls += 1
        try:
            response = self._send_single_request(call)
        except MoneybirdError as error:
            TALLY.moneybird_answer(key, error.status_code)
            if isinstance(error, RateLimited) and error.retry_at:
                self._hold(key, call.shown, error.retry_at)
                if key != GLOBAL:
                    self._widen_if_unexpected(key, call.shown, error.retry_at)
            raise
        TALLY.moneybird_answer(key, response.status_code)
        now = time.time()
        self._reconcile(key, call.shown, RateHeaders.parse(response.headers, now), now)
        return response

    def _send_single_request(self, call: _Call) -> httpx2.Response:
        """One HTTP exchange: the response, or the :mod:`errors` exception its answer means."""
        method, shown = call.method, call.shown
        try:
            request = self.http.build_request(
                method,
                call.url,
                params=call.params,
                json=call.json,
                files=call.files,
                headers={"Authorization": f"Bearer {call.token}"},
            )
            response = self.http.send(
                request, follow_redirects=call.follow_redirects, stream=call.sink is not None
            )
            try:
                if call.sink is not None and response.is_success:
                    if call.sink.seekable():  # a retry writes the file from the start
                        call.sink.seek(0)
                        call.sink.truncate()
                    for chunk in response.iter_bytes():
                        call.sink.write(chunk)
                else:
                    response.read()
            finally:
                response.close()
        except httpx2.TimeoutException:
            error: MoneybirdError = Timeout(
                f"no answer to {method} {shown} in time", method=method, path=shown
            )
        except httpx2.TransportError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            error = ConnectionFailed(f"{method} {shown}: {reason}", method=method, path=shown)
        else:
            found = error_for(
                response.status_code,
                method=method,
                path=shown,
                body=None
                if response.is_success
                else decode_body(response.content, response.headers.get("content-type")),
                headers=response.headers,
                now=time.time(),
            )
            if found is None:
                return response
            error = found
        raise error  # outside the except clauses: no httpx2 exception chained to it

    def _api_path_of(self, url: str) -> str:
        """The API path errors and logs show: no host, no base path, never a token."""
        path = httpx2.URL(url).path
        base = self.http.base_url.path.rstrip("/")
        return path[len(base) :] if base and path.startswith(base + "/") else path

    def _take_slot(self, key: str, path: str, method: str) -> None:
        while (retry_at := self._acquire(key, path, method)) is not None:
            if self.on_budget == "raise":
                raise RateLimited(
                    f"hookbird's Moneybird rate budget is spent until {retry_at:.0f}",
                    retry_at=retry_at,
                    method=method,
                    path=path,
                )
            self._wait(retry_at)

    def _acquire(self, key: str, path: str, method: str) -> float | None:
        try:
            return self.budget.acquire(key, path)
        except redis.exceptions.RedisError as exc:
            # Sending without the shared budget could cost every process a 429 storm.
            raise TransientError(
                f"hookbird's rate budget in Redis is unreachable ({type(exc).__name__}); "
                "nothing was sent to Moneybird",
                method=method,
                path=path,
            ) from exc

    def _wait(self, until: float) -> None:
        seconds = max(0.0, until - time.time())
        if self.on_wait is not None:
            self.on_wait(seconds)
        self._sleep(seconds)

    def _reconcile(self, key: str, path: str, rate: RateHeaders, now: float) -> None:
        """Believe ``RateLimit-Remaining: 0`` only when it contradicts our own count.

        When our budget is spent too, the header says nothing new (and its whole-second
        reset would only add rounding); when we still have slots, someone else is using
        the token, so no slot is given out before Moneybird's reset time.
        """
        until = rate.exhausted_until(now)
        if until is None:
            return
        try:
            if self.budget.remaining(key, path) > 0:
                self.budget.hold(key, path, until)
        except redis.exceptions.RedisError as exc:
            # The request went through: failing now could make a job repeat a POST.
            log.warning("rate_budget_unreachable", error=type(exc).__name__)

    def _widened(self) -> bool:
        try:
            return self.budget.widened()
        except redis.exceptions.RedisError:
            return False  # taking the slot will say that Redis is unreachable

    def _widen_if_unexpected(self, key: str, path: str, retry_at: float) -> None:
        """A 429 while this credential's own count still had room: Moneybird counts more
        than this credential's requests (per IP address, or another user of the token),
        so every credential shares one budget from now on (see :mod:`budget`)."""
        try:
            room = self.budget.remaining(key, path)
            if room <= 0:
                return  # Moneybird counted what we counted: the per-credential budget holds
            self.budget.hold(GLOBAL, path, retry_at)
            until = time.time() + WIDENED_FOR
            if self.budget.widen(until):
                log.warning(
                    "rate_scope_widened",
                    reason=(
                        "Moneybird answered 429 while this credential's budget had room: "
                        "its limit counts more than this credential (per IP address, or "
                        "another user of the token); every credential now shares one budget"
                    ),
                    budget=key,
                    remaining=room,
                    path=path,
                    widened_for=WIDENED_FOR,
                )
        except redis.exceptions.RedisError as exc:
            log.warning("rate_budget_unreachable", error=type(exc).__name__)

    def _hold(self, key: str, path: str, until: float) -> None:
        try:
            self.budget.hold(key, path, until)
        except redis.exceptions.RedisError as exc:
            log.warning("rate_budget_unreachable", error=type(exc).__name__)
