"""The console over HTTP: when it is served, its password, its form tokens, its escaping."""

from __future__ import annotations

import httpx2
import redis

from tests.console.conftest import PASSWORD, Serve
from tests.workers.conftest import TOKEN, push_body, run_cli


def send(http: httpx2.Client, base: str, body: bytes, **headers: str) -> str:
    response = http.post(f"{base}/webhooks/moneybird", content=body, headers=headers)
    assert response.status_code == 200, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def test_not_served_without_a_password(serve_console: Serve, http: httpx2.Client) -> None:
    """By default (auto) and without HOOKBIRD_CONSOLE_PASSWORD there is no /console."""
    with serve_console(console="auto") as base:
        assert http.get(f"{base}/console/").status_code == 404
        assert http.get(f"{base}/console").status_code == 404
        assert http.get(f"{base}/healthz").status_code == 200


def test_off_means_off_even_with_a_password(serve_console: Serve, http: httpx2.Client) -> None:
    with serve_console(console="off", console_password=PASSWORD) as base:
        assert http.get(f"{base}/console/").status_code == 404


def test_a_password_guards_every_page(serve_console: Serve, http: httpx2.Client) -> None:
    """With a password: 401 with a Basic challenge without it or with a wrong one, every
    page served with it (any user name); the push path needs none."""
    with serve_console(console="auto", console_password=PASSWORD) as base:
        for path in ("/console/", "/console/health", "/console/events/x"):
            refused = http.get(f"{base}{path}")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Basic ")
            assert PASSWORD not in refused.text
        assert http.get(f"{base}/console/", auth=("ops", "wrong")).status_code == 401
        assert http.get(f"{base}/console/", auth=("ops", PASSWORD[:-1])).status_code == 401
        shown = http.get(f"{base}/console/", auth=("anyone", PASSWORD))
        assert shown.status_code == 200
        assert "Recent pushes" in shown.text
        assert http.get(f"{base}/console/health", auth=("ops", PASSWORD)).status_code == 200
        moved = http.get(f"{base}/console", auth=("ops", PASSWORD))
        assert moved.status_code == 307
        assert moved.headers["location"] == "/console/"
        send(http, base, push_body())


def test_buttons_refuse_a_post_without_the_pages_token(
    serve_console: Serve, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """A POST without the form token, or with one that is not the cookie's, is a 403 and
    changes nothing; the page's own form is taken (here: refused as already queued)."""
    with serve_console() as base:
        event_id = send(http, base, push_body())
        url = f"{base}/console/events/{event_id}/replay"
        job_before = redis_client.hgetall(f"rq:job:{event_id}")
        assert http.post(url, data={}).status_code == 403
        assert http.post(url, data={"csrf": "guessed"}).status_code == 403
        with httpx2.Client(timeout=15, cookies={"hookbird_console_csrf": "a"}) as other:
            assert other.post(url, data={"csrf": "b"}).status_code == 403
        assert redis_client.hgetall(f"rq:job:{event_id}") == job_before
        assert redis_client.llen("rq:queue:hookbird") == 1

        # A queued push's page offers no button; its cookie is what a form would carry.
        assert http.get(f"{base}/console/events/{event_id}").status_code == 200
        token = http.cookies.get("hookbird_console_csrf")
        assert token
        taken = http.post(url, data={"csrf": token})
        assert taken.status_code == 409  # reached workers.admin.replay
        assert "already queued; nothing to replay yet" in taken.text
        assert redis_client.llen("rq:queue:hookbird") == 1


HOSTILE = {
    "action": "<script>alert('action')</script>",
    "entity_type": '"><img src=x onerror=alert(1)>',
}


def test_what_a_push_or_its_headers_carry_is_escaped(
    serve_console: Serve, http: httpx2.Client
) -> None:
    """A hostile action, entity, body and headers show as text, never as
    markup, on the list and on the push's page; the page forbids scripts anyway."""
    with serve_console() as base:
        body = push_body(**HOSTILE, entity={"note": "</pre><script>alert('body')</script>"})
        event_id = send(
            http,
            base,
            body,
            **{
                "Idempotency-Key": "<svg onload=alert('key')>",
                "User-Agent": "<script>alert('agent')</script>",
            },
        )
        listing = http.get(f"{base}/console/")
        shown = http.get(f"{base}/console/events/{event_id}")
        for response in (listing, shown):
            assert response.status_code == 200
            assert "default-src 'none'" in response.headers["content-security-policy"]
            assert "<script>" not in response.text
            assert "<img" not in response.text
            assert "&lt;script&gt;alert(&#39;action&#39;)&lt;/script&gt;" in response.text
        assert "&lt;svg onload=alert(&#39;key&#39;)&gt;" in shown.text
        assert "&lt;script&gt;alert(&#39;agent&#39;)&lt;/script&gt;" in shown.text
        assert "&lt;/pre&gt;&lt;script&gt;" in shown.text
        assert TOKEN not in shown.text


def test_unknown_push_and_bad_ids(serve_console: Serve, http: httpx2.Client) -> None:
    with serve_console() as base:
        missing = http.get(f"{base}/console/events/0000nothing")
        assert missing.status_code == 404
        assert "HOOKBIRD_EVENT_RETENTION" in missing.text
        odd = http.get(f"{base}/console/events/%3Cscript%3E")
        assert odd.status_code == 404
        assert "<script>" not in odd.text
        hostile = '"><script>alert(1)</script>'
        filtered = http.get(f"{base}/console/", params={"action": hostile, "entity": hostile})
        assert filtered.status_code == 200
        assert "<script>" not in filtered.text
        assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in filtered.text


def test_the_form_filters_the_list(serve_console: Serve, http: httpx2.Client) -> None:
    """The list's filters (as the form sends them) narrow it, and the form keeps them."""
    with serve_console() as base:
        ids = [send(http, base, push_body(entity_id=str(n))) for n in range(3)]
        invoice = send(
            http, base, push_body(action="sales_invoice_created", entity_type="SalesInvoice")
        )
        shown = http.get(f"{base}/console/", params={"action": "contact", "outcome": "queued"})
        table = shown.text.split('id="pushes"')[1]
        assert all(i in table for i in ids)
        assert invoice not in table
        assert 'name="action" value="contact"' in shown.text
        assert '<option value="queued" selected>' in shown.text
        everything = http.get(f"{base}/console/").text
        assert all(i in everything for i in [*ids, invoice])


def test_serve_refuses_an_open_console_on_a_public_address(redis_url: str) -> None:
    """`hookbird serve --host 0.0.0.0` with HOOKBIRD_CONSOLE=open stops before it listens,
    saying what to set instead."""
    result = run_cli(redis_url, "serve", "--host", "0.0.0.0", HOOKBIRD_CONSOLE="open")
    assert result.returncode == 1
    assert "HOOKBIRD_CONSOLE_PASSWORD" in result.stderr
    assert "listen on 127.0.0.1" in result.stderr


def test_health_shows_webhooks_queue_and_budget(
    serve_console: Serve, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """The health page lists the webhook store, the queue and the budget each named
    credential has left (a webhook's administration, the shared one), not unused ones."""
    from hookbird.moneybird.budget import RedisBudget
    from hookbird.subscriptions import SubscriptionStore

    SubscriptionStore(redis_client).add(
        webhook_id="418000000000000007", administration_id="777", token="t" * 32
    )
    budget = RedisBudget(redis_client)
    for _ in range(3):
        assert budget.acquire("administration:777", "/contacts.json") is None
    assert budget.acquire("global", "/contacts.json") is None
    with serve_console() as base:
        send(http, base, push_body())
        page = http.get(f"{base}/console/health").text
    webhooks = page.split('id="webhooks"')[1].split("</table>")[0]
    assert "418000000000000007" in webhooks
    assert ">777<" in webhooks
    assert '<b id="waiting">1</b>' in page
    lines = page.split('id="budget"')[1].split("</table>")[0]
    assert "administration:777</td>" in lines
    assert "147 of 150" in lines
    assert "global</td>" in lines
    assert "149 of 150" in lines
    assert "administration:123" not in lines  # pushed, but never spent budget
