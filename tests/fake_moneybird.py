"""A fake Moneybird on a real socket, for the client's tests, the workers' and the benchmark.

It behaves like the parts of Moneybird hookbird depends on, strictly:

- ``Authorization: Bearer`` required (personal tokens and OAuth-issued ones, which
  expire); paths must end in ``.json``; IDs are 64-bit numbers as strings;
- list endpoints paginate with ``page``/``per_page`` (≤ 100) and a ``Link`` header,
  never a total; synchronization endpoints (GET ids+versions, POST ≤ 100 ids);
- a sliding-window rate limit per token (and a stricter one for ``/reports/``) with
  Moneybird's header shapes on every answer and ``429 Retry later`` + an epoch
  ``Retry-After`` when spent;
- bursts of 5xx on demand (:meth:`FakeMoneybird.fail_next`);
- webhook create (unwrapped ``url`` + ``enabled_events``; the removed ``events`` field
  is refused) answers ``token`` and ``secret`` and POSTs a signed ``test_webhook``
  push to the URL; :meth:`FakeMoneybird.push` delivers real event pushes later;
- ``/oauth/token`` for the authorization-code and refresh grants (refresh tokens
  are single-use unless ``spend_refresh_tokens=False``; a spent or unknown one gets
  ``400 {"error": "invalid_grant"}``); ``hold_next_refresh`` keeps one refresh
  waiting for a test.

In a test: ``with FakeMoneybird().serve() as fake: Client(base_url=fake.api_url, …)``.
As a process (benchmarks): ``python -m tests.fake_moneybird --port 8123 --limit 30
--window 6``; ``GET /_fake/stats`` reports what it saw, ``GET /_fake/ids/contacts``
lists ids without touching the rate limit.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import math
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

ADMINISTRATION = "123456789012345678"
TOKEN = "fake-personal-token-0123456789"

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


def _error(status: int, message: str, symbolic: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if symbolic is not None:
        body["symbolic"] = symbolic
    return JSONResponse(body, status_code=status)


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


class FakeMoneybird:
    """State and behaviour of the fake; :attr:`app` is the ASGI app."""

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] = (TOKEN,),
        administrations: tuple[str, ...] = (ADMINISTRATION,),
        limit: int = 150,
        window: float = 300.0,
        reports_limit: int = 50,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret-0123456789",
        token_lifetime: float = 7200.0,
        refresh_delay: float = 0.0,
        spend_refresh_tokens: bool = True,
    ) -> None:
        self.tokens = set(tokens)
        self.administrations = {
            a: {"id": a, "name": f"Administration {a}"} for a in administrations
        }
        self.limit, self.window, self.reports_limit = limit, window, reports_limit
        self.client_id, self.client_secret = client_id, client_secret
        self.token_lifetime, self.refresh_delay = token_lifetime, refresh_delay
        # False: a refresh token stays valid after use (a grace period some servers allow).
        self.spend_refresh_tokens = spend_refresh_tokens
        # Set by a test: the next refresh request waits for it before it is answered.
        self.hold_next_refresh: threading.Event | None = None
        self.refresh_held = threading.Event()  # set while a held refresh waits
        self.oauth_tokens: dict[str, float] = {}  # access token → expires at
        self.refresh_tokens: dict[str, tuple[str, ...]] = {}  # refresh token → scopes
        self.codes: dict[str, tuple[str, ...]] = {}
        self.records: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.stats: Counter[str] = Counter()
        self.pushes: list[tuple[str, int]] = []  # (url, status) of pushes delivered
        self._windows: dict[tuple[str, str], _Window] = {}
        self._fail: deque[int] = deque()
        self._ids = itertools.count(496081407814141080, 7919)
        self._lock = threading.Lock()
        self.api_url = ""
        self.app = Starlette(
            routes=[
                Route("/api/v2/{rest:path}", self._api, methods=["GET", "POST", "PATCH", "DELETE"]),
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/files/{name}", self._file, methods=["GET"]),
                Route("/_fake/stats", self._stats, methods=["GET"]),
                Route("/_fake/ids/{resource}", self._list_ids, methods=["GET"]),
            ]
        )

    # -- control from tests ---------------------------------------------------------

    def new_id(self) -> str:
        with self._lock:
            return str(next(self._ids))

    def add(
        self, resource: str, record: dict[str, Any], administration: str = ADMINISTRATION
    ) -> dict[str, Any]:
        """Store a record directly (no request, no budget); returns it with id and version."""
        stored = {
            "id": self.new_id(),
            "administration_id": administration,
            "version": int(time.time()),
            **record,
        }
        self.records.setdefault((administration, resource), {})[stored["id"]] = stored
        return stored

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` API requests with ``status`` (a 5xx burst)."""
        self._fail.extend([status] * count)

    def issue_code(self, scopes: tuple[str, ...] = ("sales_invoices", "settings")) -> str:
        """An authorization code, as if a user had clicked "allow"."""
        code = secrets.token_hex(16)
        self.codes[code] = scopes
        return code

    def count(self, method: str, path_part: str) -> int:
        return sum(1 for m, p, _, _ in self.requests if m == method and path_part in p)

    @contextmanager
    def serve(self) -> Iterator[FakeMoneybird]:
        from tests.support import serve_in_thread

        with serve_in_thread(self.app) as base:
            self.api_url = f"{base}/api/v2"
            yield self

    def push(self, webhook_id: str, action: str, entity_type: str, entity: dict[str, Any]) -> int:
        """Deliver an event push for a registered webhook, signed like Moneybird; its status."""
        for (administration, resource), found in self.records.items():
            hook = found.get(webhook_id) if resource == "webhooks" else None
            if hook is None:
                continue
            body = {
                "administration_id": administration,
                "webhook_id": webhook_id,
                "webhook_token": hook["token"],
                "entity_type": entity_type,
                "entity_id": str(entity.get("id", "")),
                "state": entity.get("state"),
                "action": action,
                "entity": entity,
            }
            with httpx2.Client(timeout=5) as http:
                return self._deliver(http, hook, body)
        raise KeyError(webhook_id)

    def _deliver(self, http: httpx2.Client, hook: dict[str, Any], body: dict[str, Any]) -> int:
        raw = json.dumps(body).encode()
        stamp = int(time.time())
        digest = hmac.new(hook["secret"].encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": secrets.token_hex(16),
            "Moneybird-Signature": f"t={stamp},v1={digest.hexdigest()}",
        }
        try:
            status = http.post(hook["url"], content=raw, headers=headers).status_code
        except httpx2.TransportError:
            status = 0
        hook["last_http_status"] = status or None
        self.pushes.append((hook["url"], status))
        return status

    # -- the API --------------------------------------------------------------------

    def _bearer(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        now = time.time()
        valid = any(hmac.compare_digest(token, t) for t in self.tokens)
        expires = self.oauth_tokens.get(token)
        return token if valid or (expires is not None and expires > now) else None

    def _limit(self, token: str, path: str) -> tuple[bool, dict[str, str]]:
        now = time.time()
        with self._lock:
            buckets = [("api", self.limit)]
            if "/reports/" in path:
                buckets.append(("reports", self.reports_limit))
            windows = [
                self._windows.setdefault((name, token), _Window(limit, self.window))
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

    async def _api(self, request: Request) -> Response:
        path = "/" + request.path_params["rest"]
        self.stats["requests"] += 1
        token = self._bearer(request)
        if token is None:
            self.stats["unauthorized"] += 1
            return _error(401, "Token is invalid or expired")
        allowed, rate = self._limit(token, path)
        if not allowed:
            self.stats["rate_limited"] += 1
            return PlainTextResponse("Retry later", status_code=429, headers=rate)
        raw = await request.body()
        body = (
            json.loads(raw)
            if raw and request.headers.get("content-type", "").startswith("application/json")
            else (raw or None)
        )
        self.requests.append((request.method, path, dict(request.query_params), body))
        if self._fail:
            self.stats["failed"] += 1
            return PlainTextResponse("Internal Server Error", self._fail.popleft(), headers=rate)
        response = await self._route(request, path, body)
        response.headers.update(rate)
        return response

    async def _route(self, request: Request, path: str, body: Any) -> Response:
        if not path.endswith(".json"):
            return _error(404, "Unknown format: use the .json suffix")
        parts = path[1:-5].split("/")
        if parts == ["administrations"]:
            return JSONResponse(list(self.administrations.values()))
        administration, rest = parts[0], parts[1:]
        if administration not in self.administrations:
            return _error(404, "Administration not found")
        if rest[:1] == ["reports"]:
            return JSONResponse({"report": "/".join(rest[1:])})
        resource = next(
            (r for r in sorted(RESOURCES, key=len, reverse=True) if "/".join(rest).startswith(r)),
            None,
        )
        if resource is None:
            return _error(404, "record not found")
        tail = rest[len(resource.split("/")) :]
        records = self.records.setdefault((administration, resource), {})
        method = request.method
        if not tail:
            if method == "GET":
                return self._page(
                    request, list(records.values()), paginate=resource not in UNPAGINATED
                )
            if method == "POST":
                return await self._create(administration, resource, records, body)
        elif tail == ["synchronization"]:
            if method == "GET":
                return JSONResponse(
                    [{"id": r["id"], "version": r["version"]} for r in records.values()]
                )
            if method == "POST":
                ids = body.get("ids") if isinstance(body, dict) else None
                if not isinstance(ids, list):
                    return _error(400, "ids is required", {"ids": "required"})
                return JSONResponse([records[str(i)] for i in ids[:100] if str(i) in records])
        else:
            record = records.get(tail[0])
            if record is None:
                return _error(404, "record not found", {"id": "not_found"})
            action = tail[1] if len(tail) > 1 else None
            if action is None and method == "GET":
                return JSONResponse(record)
            if action is None and method == "DELETE":
                del records[tail[0]]
                return Response(status_code=204)
            if action is None and method == "PATCH":
                wrapper = RESOURCES[resource]
                if not isinstance(body, dict) or wrapper not in body:
                    return _error(400, f"{wrapper} is required", {wrapper: "required"})
                record.update(body[wrapper], version=record["version"] + 1)
                return JSONResponse(record)
            if action in ("activate", "deactivate") and method == "PATCH":
                record["deactivated_at"] = None if action == "activate" else time.time()
                return Response(status_code=204)
            if action == "download_pdf" and method == "GET":
                return RedirectResponse(f"{request.base_url}files/{tail[0]}.pdf", status_code=302)
            if method in ("PATCH", "POST"):
                record.setdefault("actions", []).append(action)
                return JSONResponse(record)
        return _error(405, f"{method} not allowed here")

    def _page(self, request: Request, items: list[Any], *, paginate: bool) -> Response:
        if not paginate:
            return JSONResponse(items)
        try:
            page = int(request.query_params.get("page", "1"))
            per_page = int(request.query_params.get("per_page", "50"))
        except ValueError:
            return _error(400, "page and per_page must be numbers")
        if not 1 <= per_page <= 100 or page < 1:
            return _error(400, "per_page must be between 1 and 100")
        start = (page - 1) * per_page
        base = str(request.url.replace(query=""))
        links = []
        if page > 1:
            links.append(f'<{base}?page={page - 1}&per_page={per_page}>; rel="prev"')
        if start + per_page < len(items):
            links.append(f'<{base}?page={page + 1}&per_page={per_page}>; rel="next"')
        headers = {"Link": ", ".join(links)} if links else {}
        return JSONResponse(items[start : start + per_page], headers=headers)

    async def _create(
        self, administration: str, resource: str, records: dict[str, dict[str, Any]], body: Any
    ) -> Response:
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
            test = {
                "administration_id": administration,
                "action": "test_webhook",
                "token": hook["token"],
            }
            with httpx2.Client(timeout=5) as http:  # Moneybird calls the URL on registration
                await _in_thread(self._deliver, http, hook, test)
            return JSONResponse(hook, status_code=201)
        if not isinstance(body, dict) or not isinstance(body.get(wrapper), dict):
            return _error(400, f"{wrapper} is required", {wrapper: "required"})
        stored = self.add(resource, body[wrapper], administration)
        return JSONResponse(stored, status_code=201)

    async def _token(self, request: Request) -> Response:
        # Parsed by hand: Starlette's form parser needs python-multipart.
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if not (
            hmac.compare_digest(str(form.get("client_id", "")), self.client_id)
            and hmac.compare_digest(str(form.get("client_secret", "")), self.client_secret)
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = form.get("grant_type")
        if grant == "authorization_code":
            scopes = self.codes.pop(str(form.get("code", "")), None)
        elif grant == "refresh_token":
            self.stats["refreshes"] += 1
            if self.refresh_delay:
                await _in_thread(time.sleep, self.refresh_delay)
            hold, self.hold_next_refresh = self.hold_next_refresh, None
            if hold is not None:
                self.refresh_held.set()
                await _in_thread(hold.wait, 10.0)
            spent = str(form.get("refresh_token", ""))
            if self.spend_refresh_tokens:
                scopes = self.refresh_tokens.pop(spent, None)
            else:
                scopes = self.refresh_tokens.get(spent)
        else:
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if scopes is None:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access, refresh = secrets.token_hex(32), secrets.token_hex(32)
        self.oauth_tokens[access] = time.time() + self.token_lifetime
        self.refresh_tokens[refresh] = scopes
        return JSONResponse(
            {
                "access_token": access,
                "token_type": "bearer",
                "refresh_token": refresh,
                "scope": " ".join(scopes),
                "created_at": int(time.time()),
                "expires_in": int(self.token_lifetime),
            }
        )

    async def _file(self, request: Request) -> Response:
        return Response(
            b"%PDF-1.4 fake " + request.path_params["name"].encode(), media_type="application/pdf"
        )

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(dict(self.stats))

    async def _list_ids(self, request: Request) -> Response:
        """Ids of every record of a resource, outside auth and rate limit (benchmark setup)."""
        found = self.records.get((ADMINISTRATION, request.path_params["resource"]), {})
        return JSONResponse(list(found))


async def _in_thread(func: Any, *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(func, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Moneybird (benchmarks, demos).")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--limit", type=int, default=150)
    parser.add_argument("--window", type=float, default=300.0)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--contacts", type=int, default=0, help="contacts to create at start")
    args = parser.parse_args()
    import uvicorn

    fake = FakeMoneybird(tokens=(args.token,), limit=args.limit, window=args.window)
    for n in range(args.contacts):
        fake.add("contacts", {"company_name": f"Contact {n}"})
    uvicorn.run(fake.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
