"""The client against the fake Moneybird: paths, bodies, pages, retries, errors."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hookbird.moneybird import Client, errors
from hookbird.moneybird.budget import BudgetConfig
from hookbird.settings import Settings
from tests.fake_moneybird import TOKEN, FakeMoneybird


def test_list_follows_link_headers_across_three_pages(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """250 contacts come back from 3 pages of 100, following rel="next" only."""
    made = [fake.add("contacts", {"company_name": f"C{n}"}) for n in range(250)]
    listed = list(client.administration(admin_id).contacts.list())
    assert [c["id"] for c in listed] == [c["id"] for c in made]
    pages = [q for m, p, q, _ in fake.requests if p.endswith("/contacts.json")]
    assert [q.get("page", "1") for q in pages] == ["1", "2", "3"]
    assert all(q["per_page"] == "100" for q in pages)


def test_filters_reach_the_query_string(client: Client, fake: FakeMoneybird, admin_id: str) -> None:
    """list(filter=...) sends Moneybird's filter parameter as given."""
    list(client.administration(admin_id).sales_invoices.list(filter="period:prev_year,state:open"))
    assert fake.requests[-1][2] == {"filter": "period:prev_year,state:open", "per_page": "100"}


def test_create_wraps_the_body_and_ids_are_strings(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """create() wraps attributes as {"contact": {...}} and returns string ids."""
    created = client.administration(admin_id).contacts.create(company_name="Vogel B.V.")
    assert fake.requests[-1][3] == {"contact": {"company_name": "Vogel B.V."}}
    assert isinstance(created["id"], str)
    assert int(created["id"]) > 2**32


def test_get_update_delete_round_trip(client: Client, fake: FakeMoneybird, admin_id: str) -> None:
    """get, update (wrapped PATCH) and delete hit the .json paths of one record."""
    contacts = client.administration(admin_id).contacts
    made = fake.add("contacts", {"company_name": "Old"})
    assert contacts.get(made["id"])["company_name"] == "Old"
    assert contacts.update(made["id"], company_name="New")["company_name"] == "New"
    contacts.delete(made["id"])
    with pytest.raises(errors.NotFound) as caught:
        contacts.get(made["id"])
    assert caught.value.path == f"/{admin_id}/contacts/{made['id']}.json"
    assert [m for m, *_ in fake.requests] == ["GET", "PATCH", "DELETE", "GET"]


def test_sync_and_fetch_many_in_chunks_of_100(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """sync() lists ids and versions; fetch_many() POSTs 100 ids at a time."""
    made = [fake.add("contacts", {"company_name": f"C{n}"}) for n in range(250)]
    contacts = client.administration(admin_id).contacts
    synced = contacts.sync()
    assert {s["id"] for s in synced} == {c["id"] for c in made}
    assert all(isinstance(s["id"], str) for s in synced)
    assert all(isinstance(s["version"], int) for s in synced)
    fetched = contacts.fetch_many(c["id"] for c in made)
    assert len(fetched) == 250
    posts = [body for m, p, _, body in fake.requests if m == "POST"]
    assert [len(b["ids"]) for b in posts] == [100, 100, 50]


def test_changed_since_fetches_only_changed_records(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """changed_since() compares versions and fetches only what moved."""
    made = [fake.add("contacts", {"company_name": f"C{n}"}) for n in range(5)]
    known = {c["id"]: str(c["version"]) for c in made}
    made[2]["version"] += 1
    changed = client.administration(admin_id).contacts.changed_since(known)
    assert [c["id"] for c in changed] == [made[2]["id"]]


def test_download_pdf_follows_the_redirect(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """download_pdf() returns the file behind Moneybird's 302."""
    invoice = fake.add("sales_invoices", {"state": "open"})
    pdf = client.administration(admin_id).sales_invoices.download_pdf(invoice["id"])
    assert pdf.startswith(b"%PDF")


def test_downloads_leave_the_token_behind_on_the_storage_host(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """pdf() and packing_slip_pdf() follow the 302 to another host (Moneybird's storage)
    and return the file's bytes; the file host never sees the bearer token."""
    invoice = fake.add("sales_invoices", {"state": "open"})
    invoices = client.administration(admin_id).sales_invoices
    assert invoices.pdf(invoice["id"]).startswith(b"%PDF-1.4 fake")
    slip = invoices.packing_slip_pdf(invoice["id"])
    assert b"download_packing_slip_pdf" in slip
    assert fake.storage_url is not None
    assert "localhost" in fake.storage_url
    assert [authorized for _, authorized in fake.file_requests] == [False, False]


def test_request_returns_a_file_as_bytes(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """request() follows the download's redirect and hands back the PDF undecoded."""
    invoice = fake.add("sales_invoices", {"state": "open"})
    fake.download_padding = 10
    pdf = client.administration(admin_id).request(
        "GET", f"/sales_invoices/{invoice['id']}/download_pdf"
    )
    assert isinstance(pdf, bytes)
    assert pdf.startswith(b"%PDF-1.4 fake")
    assert pdf.endswith(b"\n" + b"0" * 10)


class Chunks(io.BytesIO):
    """A binary file that remembers how it was written, and cannot seek (like a pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []

    def write(self, chunk: Any, /) -> int:
        self.writes.append(len(chunk))
        return super().write(chunk)

    def seekable(self) -> bool:
        return False


def test_a_large_download_streams_to_a_file(
    client: Client, fake: FakeMoneybird, admin_id: str, tmp_path: Path
) -> None:
    """pdf(id, to=path) writes the 3 MB file as it arrives (many writes, never the whole
    body at once) and returns its size; to= also takes an open binary file."""
    invoice = fake.add("sales_invoices", {"state": "open"})
    fake.download_padding = 3_000_000
    invoices = client.administration(admin_id).sales_invoices
    target = tmp_path / "invoice.pdf"
    written = invoices.pdf(invoice["id"], to=target)
    assert written == target.stat().st_size > 3_000_000
    assert target.read_bytes().startswith(b"%PDF-1.4 fake")
    sink = Chunks()
    assert invoices.pdf(invoice["id"], to=sink) == written
    assert len(sink.writes) > 1
    assert max(sink.writes) < written
    assert sink.getvalue() == target.read_bytes()


def test_generic_request_adds_the_json_suffix(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """request() on the administration adds .json and counts /reports/ in both budgets."""
    answer = client.administration(admin_id).request("GET", "/reports/profit_loss")
    assert answer == {"report": "profit_loss"}
    assert fake.requests[-1][1] == f"/{admin_id}/reports/profit_loss.json"


def test_administrations_lists_what_the_token_sees(client: Client) -> None:
    """administrations() answers the list from /administrations.json."""
    assert [a["id"] for a in client.administrations()] == ["123456789012345678"]


def test_wrong_token_is_unauthorized_without_the_token_in_the_error(
    fake: FakeMoneybird, admin_id: str
) -> None:
    """A 401 raises Unauthorized whose text and repr never contain the token."""
    bad = "wrong-token-should-not-leak-42"
    with (
        Client(token=bad, base_url=fake.api_url) as client,
        pytest.raises(errors.Unauthorized) as caught,
    ):
        client.administration(admin_id).contacts.get("1")
    assert bad not in str(caught.value) + repr(caught.value) + str(caught.value.body)


def test_5xx_burst_is_retried_for_get(client: Client, fake: FakeMoneybird, admin_id: str) -> None:
    """A GET survives a burst of two 503s (bounded retries with backoff)."""
    made = fake.add("contacts", {"company_name": "Retry"})
    fake.fail_next(2, 503)
    assert client.administration(admin_id).contacts.get(made["id"])["id"] == made["id"]
    assert fake.count("GET", "/contacts/") == 3


def test_5xx_burst_longer_than_retries_raises_server_error(
    client: Client, fake: FakeMoneybird, admin_id: str
) -> None:
    """After the bounded retries, a 5xx burst surfaces as ServerError (transient)."""
    fake.fail_next(10, 502)
    with pytest.raises(errors.ServerError) as caught:
        client.administration(admin_id).contacts.get("1")
    assert caught.value.status_code == 502
    assert fake.count("GET", "/contacts/") == 1 + client.retries


def test_post_is_never_retried_blindly(client: Client, fake: FakeMoneybird, admin_id: str) -> None:
    """A POST that got a 5xx raises at once: Moneybird has no idempotency keys."""
    fake.fail_next(1, 500)
    with pytest.raises(errors.ServerError):
        client.administration(admin_id).contacts.create(company_name="Once")
    assert fake.count("POST", "/contacts") == 1
    assert fake.records.get((fake_admin(fake), "contacts"), {}) == {}


def fake_admin(fake: FakeMoneybird) -> str:
    return next(iter(fake.administrations))


def test_timeouts_are_retried_then_raised(admin_id: str) -> None:
    """A transport that times out gives Timeout after 1 + retries attempts."""
    attempts = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        attempts.append(request.url.path)
        raise httpx2.ReadTimeout("slow", request=request)

    transport = httpx2.MockTransport(handler)
    with (
        Client(token=TOKEN, transport=transport, retries=2, sleep=lambda _s: None) as client,
        pytest.raises(errors.Timeout),
    ):
        client.administration(admin_id).contacts.get("5")
    assert len(attempts) == 3


def test_refused_connection_is_connection_failed(admin_id: str) -> None:
    """Nothing listening → ConnectionFailed, a transient error."""
    from hookbird.redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}/api/v2"
    with (
        Client(token=TOKEN, base_url=url, retries=0) as client,
        pytest.raises(errors.ConnectionFailed),
    ):
        client.administration(admin_id).contacts.get("5")


def test_server_429_raises_rate_limited_with_epoch_retry_at(
    settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """A 429 'Retry later' with an epoch Retry-After becomes RateLimited(retry_at) and holds
    the shared budget until then, so no process sends again before it."""
    with FakeMoneybird(limit=2, window=60).serve() as strict:
        # Another program spends the token's budget behind hookbird's back.
        for _ in range(2):
            httpx2.get(
                f"{strict.api_url}/administrations.json",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        local = replace(settings, moneybird_api_url=strict.api_url)
        with (
            Client.for_worker(local, redis_client) as one,
            Client.for_worker(local, redis_client) as another,
        ):
            contacts = one.administration(admin_id).contacts
            with pytest.raises(errors.RateLimited) as caught:
                contacts.sync()
            assert caught.value.status_code == 429
            assert caught.value.body == "Retry later"
            retry_at = caught.value.retry_at
            assert retry_at is not None
            assert retry_at > 1e9
            other = another.administration(admin_id).contacts
            with pytest.raises(errors.RateLimited) as held:
                other.sync()
        assert held.value.status_code is None  # our budget said no; nothing was sent
        assert held.value.retry_at is not None
        assert held.value.retry_at >= retry_at - 1
        assert strict.stats["rate_limited"] == 1


def test_remaining_zero_holds_the_budget_until_reset(
    settings: Settings, redis_client: redis.Redis, admin_id: str
) -> None:
    """RateLimit-Remaining: 0 with a reset time stops the next call before it is sent."""
    with FakeMoneybird(limit=2, window=60).serve() as strict:
        local = replace(settings, moneybird_api_url=strict.api_url)
        with Client.for_worker(local, redis_client) as client:
            contacts = client.administration(admin_id).contacts
            contacts.sync()
            contacts.sync()
            with pytest.raises(errors.RateLimited) as caught:
                contacts.sync()
        assert caught.value.status_code is None
        assert strict.stats["requests"] == 2
        assert strict.stats["rate_limited"] == 0


def test_next_link_to_another_host_never_gets_the_token(admin_id: str) -> None:
    """A Link pointing at another host is rebased on the API's own: the token stays home."""
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(str(request.url))
        if request.url.params.get("page") == "2":
            return httpx2.Response(200, json=[{"id": "2"}])
        link = f'<https://elsewhere.example/api/v2/{admin_id}/contacts.json?page=2>; rel="next"'
        return httpx2.Response(200, json=[{"id": "1"}], headers={"Link": link})

    with Client(token=TOKEN, transport=httpx2.MockTransport(handler)) as client:
        listed = list(client.administration(admin_id).contacts.list())
    assert [c["id"] for c in listed] == ["1", "2"]
    assert all(url.startswith("https://moneybird.com/api/v2/") for url in seen)


def test_unreachable_budget_sends_nothing_and_is_transient(admin_id: str) -> None:
    """Redis down: a TransientError, and no request leaves without a slot."""
    from hookbird.redis_server import free_port

    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200, json=[])

    no_retry = Retry(NoBackoff(), 0)
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.5, retry=no_retry)
    client = Client(token=TOKEN, transport=httpx2.MockTransport(handler), redis=dead)
    with pytest.raises(errors.TransientError, match="unreachable"):
        client.administration(admin_id).contacts.sync()
    assert sent == []


class _BudgetLostAfterSending:
    """Grants the slot, then loses Redis before the answer is reconciled."""

    config = BudgetConfig()

    def acquire(self, key: str, path: str) -> float | None:
        return None

    def hold(self, key: str, path: str, until: float) -> None:
        raise redis.exceptions.ConnectionError("gone")

    def remaining(self, key: str, path: str) -> int:
        raise redis.exceptions.ConnectionError("gone")

    def widen(self, until: float) -> bool:
        raise redis.exceptions.ConnectionError("gone")

    def widened(self) -> bool:
        return False


def test_a_sent_post_never_fails_on_budget_bookkeeping(admin_id: str) -> None:
    """Redis lost after a POST went through: the created record is returned, not an error
    that would make the job create it twice."""
    reset = str(int(time.time()) + 60)

    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"RateLimit-Remaining": "0", "RateLimit-Reset": reset}
        return httpx2.Response(201, json={"id": "7"}, headers=headers)

    transport = httpx2.MockTransport(handler)
    client = Client(token=TOKEN, transport=transport, budget=_BudgetLostAfterSending())
    assert client.administration(admin_id).contacts.create(company_name="Once")["id"] == "7"


def test_typeless_documents_refuse_update_before_sending(admin_id: str) -> None:
    """What Moneybird does not offer fails locally, without a request."""
    sent: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(200)

    client = Client(token=TOKEN, transport=httpx2.MockTransport(answer))
    with pytest.raises(NotImplementedError):
        client.administration(admin_id).typeless_documents.update("1", reference="x")
    assert sent == []


def _scripted(answers: list[httpx2.Response], sent: list[httpx2.Request]) -> httpx2.MockTransport:
    """A transport giving ``answers`` in order (the last one again once they run out)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return answers[min(len(sent), len(answers)) - 1]

    return httpx2.MockTransport(handler)


def test_cli_client_waits_out_a_429_and_sends_again(admin_id: str) -> None:
    """on_budget="wait": Moneybird's 429 is waited out until its Retry-After, then resent."""
    sent: list[httpx2.Request] = []
    waits: list[float] = []
    answers = [
        httpx2.Response(429, text="Retry later", headers={"Retry-After": "0.05"}),
        httpx2.Response(200, json=[]),
    ]
    client = Client(
        token=TOKEN, transport=_scripted(answers, sent), on_budget="wait", on_wait=waits.append
    )
    assert client.administration(admin_id).contacts.sync() == []
    assert len(sent) == 2
    assert waits
    assert 0 < waits[0] <= 0.05


def test_429_waits_and_5xx_retries_share_one_allowance(admin_id: str) -> None:
    """retries=2 covers a waited-out 429 and a retried 503 together: the next 429 raises."""
    sent: list[httpx2.Request] = []
    limited = httpx2.Response(429, text="Retry later", headers={"Retry-After": "0.01"})
    answers = [limited, httpx2.Response(503), limited, httpx2.Response(503)]
    client = Client(
        token=TOKEN,
        transport=_scripted(answers, sent),
        on_budget="wait",
        retries=2,
        sleep=lambda s: time.sleep(min(s, 0.01)),
    )
    with pytest.raises(errors.RateLimited):
        client.administration(admin_id).contacts.sync()
    assert len(sent) == 3


class _RefreshingTokens:
    """A token source that hands out a fresh token whenever a 401 asks for one."""

    def __init__(self) -> None:
        self.refreshes = 0

    def token_for(self, administration_id: str | None) -> str:
        return "stale"

    def after_unauthorized(self, administration_id: str | None, stale: str) -> str | None:
        self.refreshes += 1
        return f"fresh-{self.refreshes}"

    def budget_key(self, administration_id: str | None, token: str) -> str:
        return "one"


def test_a_401_gets_one_refresh_per_call_even_across_retries(admin_id: str) -> None:
    """401 → refresh → 503 → retry → 401 again: Unauthorized, no second refresh."""
    sent: list[httpx2.Request] = []
    answers = [httpx2.Response(401), httpx2.Response(503), httpx2.Response(401)]
    tokens = _RefreshingTokens()
    client = Client(
        transport=_scripted(answers, sent), tokens=tokens, retries=2, sleep=lambda _s: None
    )
    with pytest.raises(errors.Unauthorized):
        client.administration(admin_id).contacts.get("5")
    assert tokens.refreshes == 1
    assert [r.headers["Authorization"] for r in sent] == [
        "Bearer stale",
        "Bearer fresh-1",
        "Bearer fresh-1",
    ]


def test_transport_failures_chain_no_httpx_exception(admin_id: str) -> None:
    """Timeout and ConnectionFailed stand alone: no httpx2 exception hangs off them."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/1.json"):
            raise httpx2.ReadTimeout("slow", request=request)
        raise httpx2.ConnectError("refused", request=request)

    client = Client(token=TOKEN, transport=httpx2.MockTransport(handler), retries=0)
    contacts = client.administration(admin_id).contacts
    for contact_id, kind in (("1", errors.Timeout), ("2", errors.ConnectionFailed)):
        with pytest.raises(kind) as caught:
            contacts.get(contact_id)
        assert caught.value.__cause__ is None
        assert caught.value.__context__ is None
