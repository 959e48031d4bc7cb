"""hookbird.testing's FakeMoneybird on a real socket, for the client's tests, the workers' and
the benchmark.

:class:`hookbird.testing.FakeMoneybird` is the one Moneybird stand-in: the API,
strictly (bearer tokens, ``.json`` paths, string IDs, Link pagination without totals,
synchronization endpoints, the rate limit with Moneybird's headers and ``429 Retry
later``, 5xx bursts on demand). This subclass serves it over HTTP and adds what only
hookbird's own tests need:

- webhook create POSTs a signed ``test_webhook`` push to the URL, as Moneybird does;
  :meth:`FakeMoneybird.push` delivers real event pushes later;
- ``/oauth/token`` for the authorization-code and refresh grants (refresh tokens
  are single-use unless ``spend_refresh_tokens=False``; a spent or unknown one gets
  ``400 {"error": "invalid_grant"}``); ``hold_next_refresh`` keeps one refresh
  waiting for a test; the access tokens it issues expire.

In a test: ``with FakeMoneybird().serve() as fake: Client(base_url=fake.api_url, …)``.
As a process (benchmarks): ``python -m tests.fake_moneybird --port 8123 --limit 30
--window 6``; ``GET /_fake/stats`` reports what it saw, ``GET /_fake/ids/contacts``
lists ids without touching the rate limit.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hookbird import testing
from hookbird.testing import ADMINISTRATION, TOKEN

__all__ = ["ADMINISTRATION", "TOKEN", "FakeMoneybird"]


class FakeMoneybird(testing.FakeMoneybird):
    """hookbird.testing's fake with OAuth and pushes; :attr:`app` is the ASGI app."""

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] = (TOKEN,),
        administrations: tuple[str, ...] = (ADMINISTRATION,),
        limit: int = 150,
        window: float = 300.0,
        reports_limit: int = 50,
        limit_by: Literal["token", "ip"] = "token",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret-0123456789",
        token_lifetime: float = 7200.0,
        refresh_delay: float = 0.0,
        spend_refresh_tokens: bool = True,
    ) -> None:
        super().__init__(
            tokens=tokens,
            administrations=administrations,
            limit=limit,
            window=window,
            reports_limit=reports_limit,
            limit_by=limit_by,
        )
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
        self.pushes: list[tuple[str, int]] = []  # (url, status) of pushes delivered
        self.api_url = ""
        self.app = Starlette(
            routes=[
                Route(
                    "/api/v2/{rest:path}", self._forward, methods=["GET", "POST", "PATCH", "DELETE"]
                ),
                Route("/oauth/token", self._token, methods=["POST"]),
                Route("/files/{name}", self._forward, methods=["GET"]),
                Route("/_fake/stats", self._stats, methods=["GET"]),
                Route("/_fake/ids/{resource}", self._list_ids, methods=["GET"]),
            ]
        )

    # -- control from tests ---------------------------------------------------------

    def issue_code(self, scopes: tuple[str, ...] = ("sales_invoices", "settings")) -> str:
        """An authorization code, as if a user had clicked "allow"."""
        code = secrets.token_hex(16)
        self.codes[code] = scopes
        return code

    @contextmanager
    def serve(self) -> Iterator[FakeMoneybird]:
        from tests.support import serve_in_thread

        with serve_in_thread(self.app) as base:
            self.api_url = f"{base}/api/v2"
            # Moneybird's files live on another host: the same server, named differently.
            self.storage_url = base.replace("127.0.0.1", "localhost")
            yield self

    def push(self, webhook_id: str, action: str, entity_type: str, entity: dict[str, Any]) -> int:
        """Deliver an event push for a registered webhook, signed like Moneybird; its status
        (0: not delivered, the webhook is deactivated or nothing answered)."""
        for (administration, resource), found in self.records.items():
            hook = found.get(webhook_id) if resource == "webhooks" else None
            if hook is None:
                continue
            if hook.get("deactivated_at"):
                return 0  # Moneybird sends nothing through a deactivated webhook
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

    # -- what hookbird.testing's fake leaves out ----------------------------------------

    def token_valid(self, token: str) -> bool:
        expires = self.oauth_tokens.get(token)
        return super().token_valid(token) or (expires is not None and expires > time.time())

    def webhook_created(self, hook: dict[str, Any]) -> None:
        """Moneybird calls the URL on registration, before it answers."""
        test = {
            "administration_id": hook["administration_id"],
            "action": "test_webhook",
            "token": hook["token"],
        }
        with httpx2.Client(timeout=5) as http:
            self._deliver(http, hook, test)

    # -- over HTTP ------------------------------------------------------------------

    async def _forward(self, request: Request) -> Response:
        """The API and downloads, answered by the transport on the event loop, as quick as
        Moneybird's own answers (the rate-limit benchmark counts on it); a webhook create
        in a thread, since it first sends the test push."""
        outgoing = httpx2.Request(
            request.method,
            str(request.url),
            headers=request.headers.raw,
            content=await request.body(),
        )
        if request.method == "POST" and request.url.path.endswith("/webhooks.json"):
            answer: httpx2.Response = await _in_thread(self.handle_request, outgoing)
        else:
            answer = self.handle_request(outgoing)
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return Response(answer.content, status_code=answer.status_code, headers=headers)

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
