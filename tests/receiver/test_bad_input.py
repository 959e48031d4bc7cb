"""Hostile and broken requests: each gets its documented status, stores nothing, harms nothing.

One receiver in multi-webhook mode (a stored subscription with a signing secret and
no environment token), on hookbird's own protocol, takes every request over a real
socket. After each one the
test checks the status, that Redis holds nothing but the subscription, and that the
receiver still answers /healthz.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx2
import pytest
import redis

from hookbird.settings import Settings
from hookbird.signing import sign
from hookbird.stored import unpack_push
from hookbird.subscriptions import SubscriptionStore
from receiver.app import create_app
from receiver.protocol import ReceiverProtocol
from tests.receiver.pushes import SECRET_KEY, as_stored
from tests.support import all_bytes, send_raw, serve_in_thread

URL = "/webhooks/moneybird"
TOKEN = "hostile-suite-token-0123456789"
SECRET = "hostile-suite-secret-abcdefghij"
ADMIN = "123456789"
CAP = 64 * 1024


def good(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "administration_id": ADMIN,
        "webhook_id": "4180",
        "webhook_token": TOKEN,
        "entity_type": "Contact",
        "entity_id": "496081234567890123",
        "state": "active",
        "action": "contact_created",
        "entity": {"id": "496081234567890123", "company_name": "Bakkerij Jansen"},
    }
    data.update(changes)
    return data


def encode(data: object) -> bytes:
    return json.dumps(data).encode()


def signed(body: bytes, t: int | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = int(time.time()) if t is None else t
    return {"Moneybird-Signature": f"t={stamp},v1={sign(body, secret, stamp)}"}


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    body: bytes | None = None
    # a function when the headers hold a time: made as the request is sent, not collected
    headers: dict[str, str] | Callable[[], dict[str, str | bytes]] | None = None
    method: str = "POST"
    sign: bool = True  # add a valid signature for the body unless headers say otherwise
    raw: Callable[[str], int] | None = None  # sends bytes itself, returns the status


def body_without(field: str) -> bytes:
    data = good()
    del data[field]
    return encode(data)


def wrong_type_cases() -> list[Case]:
    wrong: dict[str, list[object]] = {
        "action": [None, 5, [], {}, True, ""],
        "administration_id": [None, "abc", 1.5, [], {}, True, -1, "", "1" * 21],
        "webhook_id": ["x", 2.5, [], {}, False],
        "webhook_token": [5, [], {}],
        "entity_type": [5, [], {}],
        "entity_id": ["x-1", 3.3, [], {}],
        "state": [1, [], {}],
        "entity": [1, "x", []],
    }
    return [
        Case(
            f"{field} is {type(value).__name__} {value!r}"[:60], 400, encode(good(**{field: value}))
        )
        for field, values in wrong.items()
        for value in values
    ]


def trickle(base: str) -> int:
    body = encode(good())
    head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return send_raw(base, head, [body[i : i + 200] for i in range(0, len(body), 200)], pause=0.3)


def chunked_over_cap(base: str) -> int:
    head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    chunk = b"1000\r\n" + b"a" * 4096 + b"\r\n"
    return send_raw(base, head, [chunk] * 20 + [b"0\r\n\r\n"])


def lying_content_length(base: str) -> int:
    head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Length: {CAP * 100}\r\n\r\n".encode()
    return send_raw(base, head, [])


def head_over_cap(base: str) -> int:
    head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nX-Big: {'v' * 20_000}\r\n\r\n".encode()
    return send_raw(base, head)


def too_many_headers(base: str) -> int:
    fields = "".join(f"X-H{i}: v\r\n" for i in range(200))
    return send_raw(base, f"POST {URL} HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())


def upgrade_hiding_a_request(base: str) -> int:
    hidden = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n"
    head += f"Content-Length: {len(hidden)}\r\n\r\n"
    return send_raw(base, head.encode(), [hidden], pause=0.1)


def padded_to(size: int) -> bytes:
    body = encode(good())
    return body[:-1] + b" " * (size - len(body)) + b"}"


CASES: list[Case] = [
    # Not JSON at all, or not an object
    Case("empty body", 400, b""),
    Case("truncated JSON", 400, encode(good())[:-7]),
    Case("trailing garbage", 400, encode(good()) + b"}"),
    Case("single quotes", 400, b"{'action': 'contact_created'}"),
    Case("JSON null", 400, b"null"),
    Case("JSON number", 400, b"42"),
    Case("JSON string", 400, b'"contact_created"'),
    Case("JSON array of pushes", 400, encode([good(), good()])),
    Case("JSON true", 400, b"true"),
    Case("NaN constant", 400, encode(good()).replace(b'"123456789"', b"NaN", 1)),
    Case("Infinity constant", 400, encode(good()).replace(b'"123456789"', b"Infinity", 1)),
    Case("invalid UTF-8", 400, encode(good()).replace(b"Bakkerij", b"Bakk\xff\xferij")),
    Case("UTF-16 body", 400, json.dumps(good()).encode("utf-16")),
    Case("NUL bytes between tokens", 400, encode(good()).replace(b", ", b",\x00 ", 1)),
    Case("deep nesting 10,000", 400, b"[" * 10_000 + b"]" * 10_000),
    Case(
        "deep nesting inside entity",
        400,
        encode(good())[:-1] + b', "x": ' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}",
    ),
    Case(
        "nesting 200 levels inside entity",
        400,
        encode(good())[:-1] + b', "x": ' + b'{"a":' * 198 + b"1" + b"}" * 198 + b"}",
    ),
    Case(
        "nesting 1000 levels inside entity (orjson reads it)",
        400,
        encode(good())[:-1] + b', "x": ' + b"[" * 998 + b"]" * 998 + b"}",
    ),
    Case("integer past 64 bits", 400, encode(good(administration_id=2**64))),
    Case("entity_id past 64 bits", 400, encode(good(entity_id=str(2**70)))),
    Case("int with 5000 digits", 400, encode(good()).replace(b'"123456789"', b"9" * 5000, 1)),
    Case("action of 10 KB", 400, encode(good(action="a" * 10_000))),
    # Missing fields
    Case("no action", 400, body_without("action")),
    Case("no administration_id", 400, body_without("administration_id")),
    Case("no webhook_token", 401, body_without("webhook_token")),
    Case("no webhook_id (no environment token)", 401, body_without("webhook_id")),
    *wrong_type_cases(),
    # Size and timing
    Case("body one byte over the cap", 413, padded_to(CAP + 1)),
    Case("huge string field over the cap", 413, encode(good(state="s" * CAP))),
    Case("declared length over the cap", 413, raw=lying_content_length),
    Case("chunked body past the cap", 413, raw=chunked_over_cap),
    Case("body trickling past the timeout", 408, raw=trickle),
    Case("head over the size cap", 431, raw=head_over_cap),
    Case("200 header fields", 431, raw=too_many_headers),
    Case("Upgrade with a request as its body", 400, raw=upgrade_hiding_a_request),
    # Methods
    Case("GET", 405, method="GET"),
    Case("PUT", 405, encode(good()), method="PUT"),
    Case("DELETE", 405, method="DELETE"),
    Case("PATCH", 405, encode(good()), method="PATCH"),
    # Authentication
    Case("wrong token", 401, encode(good(webhook_token="wrong-token-0123456789"))),
    Case("empty token", 401, encode(good(webhook_token=""))),
    Case("token of another administration", 401, encode(good(administration_id="987654321"))),
    Case("unknown webhook", 401, encode(good(webhook_id="9999"))),
    Case("unsigned", 401, encode(good()), sign=False),
]

SIGNATURE_SHAPES = {
    "no t": "v1=" + "a" * 64,
    "no v1": "t={now}",
    "non-numeric t": "t=yesterday,v1=" + "a" * 64,
    "negative t": "t=-5,v1=" + "a" * 64,
    "stale t": "t={stale},v1={stale_sig}",
    "future t": "t={future},v1={future_sig}",
    "only unknown schemes": "t={now},v0={sig},v2={sig}",
    "non-ASCII v1": "t={now},v1=" + "\u00e9" * 64,
    "v1 of 64 non-hex letters": "t={now},v1=" + "z" * 64,
    "v1 cut short": "t={now},v1={short_sig}",
    "many v1s, none right": "t={now}," + ",".join(["v1=" + "b" * 64] * 15),
    "too many v1s": "t={now}," + ",".join(["v1=" + "b" * 64] * 20) + ",v1={sig}",
    "very long header": "t={now},v1={sig}," + "x" * 8000,
    "two t values": "t={now},t={now},v1={sig}",
    "no equals signs": "garbage",
    "empty": "",
    "signature made with another secret": "t={now},v1={other_sig}",
    "signature of another body": "t={now},v1={other_body_sig}",
}


def signature_case(name: str, shape: str) -> Case:
    body = encode(good())

    def headers() -> dict[str, str | bytes]:
        now = int(time.time())
        header = shape.format(
            now=now,
            sig=sign(body, SECRET, now),
            stale=now - 400,
            stale_sig=sign(body, SECRET, now - 400),
            future=now + 400,
            future_sig=sign(body, SECRET, now + 400),
            other_sig=sign(body, "another-secret-entirely", now),
            short_sig=sign(body, SECRET, now)[:-1],
            other_body_sig=sign(encode(good(state="x")), SECRET, now),
        )
        return {"Moneybird-Signature": header.encode("utf-8")}  # sent as it is, non-ASCII too

    return Case(f"signature: {name}", 401, body, headers=headers)


CASES += [signature_case(name, shape) for name, shape in SIGNATURE_SHAPES.items()]


@pytest.fixture(scope="module")
def receiver(redis_url: str) -> Iterator[str]:
    settings = Settings(
        redis_url=redis_url,
        max_body_bytes=CAP,
        body_timeout=0.5,
        subscription_cache_ttl=0,
        secret_key=SECRET_KEY,
    )
    with serve_in_thread(create_app(settings), http=ReceiverProtocol) as base:
        yield base


@pytest.fixture
def store(redis_client: redis.Redis) -> SubscriptionStore:
    store = SubscriptionStore(redis_client, SECRET_KEY)
    store.add(webhook_id="4180", administration_id=ADMIN, token=TOKEN, secrets=(SECRET,))
    store.add(
        webhook_id="4181", administration_id=ADMIN, token=TOKEN, secrets=(SECRET,), enabled=False
    )
    return store


def stored_keys(client: redis.Redis) -> set[bytes]:
    return set(all_bytes(client.keys("*"))) - {
        b"hookbird:webhook:4180",
        b"hookbird:webhook:4181",
        b"hookbird:webhooks",
    }


def test_there_are_at_least_forty_distinct_cases() -> None:
    """The suite covers the breadth the promise needs, each case named once."""
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))
    assert len(names) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_request_gets_its_status_and_stores_nothing(
    case: Case, receiver: str, store: SubscriptionStore, redis_client: redis.Redis
) -> None:
    """Each hostile request: the documented status, nothing stored or queued, still healthy."""
    if case.raw is not None:
        status = case.raw(receiver)
    else:
        headers = dict((case.headers() if callable(case.headers) else case.headers) or {})
        if case.sign and case.body is not None and "Moneybird-Signature" not in headers:
            headers.update(signed(case.body))
        with httpx2.Client(timeout=10) as http:
            # encoded as httpx2 would: bytes as they are, str as ASCII
            sent = [
                (k.encode("ascii"), v if isinstance(v, bytes) else v.encode("ascii"))
                for k, v in headers.items()
            ]
            response = http.request(case.method, receiver + URL, content=case.body, headers=sent)
        status = response.status_code
        if status in (400, 401):
            assert response.headers["content-type"] == "application/json"
        if status == 401:
            assert response.json() == {"status": "error", "error": "unauthorized"}
    assert status == case.status
    assert stored_keys(redis_client) == set()
    assert httpx2.get(receiver + "/healthz", timeout=5).status_code == 200


def test_disabled_webhook_is_refused(
    receiver: str, store: SubscriptionStore, redis_client: redis.Redis
) -> None:
    """A correctly signed push for a disabled webhook gets 401 and is not stored."""
    body = encode(good(webhook_id="4181"))
    response = httpx2.post(receiver + URL, content=body, headers=signed(body))
    assert response.status_code == 401
    assert stored_keys(redis_client) == set()


def test_replayed_old_push_is_refused(
    receiver: str, store: SubscriptionStore, redis_client: redis.Redis
) -> None:
    """A push captured and replayed after the tolerance: 401 even though it was once valid."""
    body = encode(good())
    captured = signed(body, t=int(time.time()) - 3600)
    response = httpx2.post(receiver + URL, content=body, headers=captured)
    assert response.status_code == 401
    assert stored_keys(redis_client) == set()


def test_replayed_fresh_push_is_only_a_duplicate(
    receiver: str, store: SubscriptionStore, redis_client: redis.Redis
) -> None:
    """A replay within the tolerance is caught by dedup: one job however often it is sent."""
    body = encode(good())
    headers = {**signed(body), "Idempotency-Key": "replayed-push"}
    statuses = [
        httpx2.post(receiver + URL, content=body, headers=headers).json()["status"]
        for _ in range(5)
    ]
    assert statuses == ["accepted"] + ["duplicate"] * 4
    assert redis_client.llen("rq:queue:hookbird") == 1


def test_unknown_fields_are_kept_not_refused(
    receiver: str, store: SubscriptionStore, redis_client: redis.Redis
) -> None:
    """Fields Moneybird may add later are accepted and stored with the raw body."""
    body = encode(good(new_field={"nested": [1, 2, 3]}, another="x"))
    response = httpx2.post(receiver + URL, content=body, headers=signed(body))
    assert response.status_code == 200
    event = response.json()["event_id"]
    assert unpack_push(redis_client.get(f"hookbird:event:{event}"))["body"] == as_stored(
        body, TOKEN
    )


def test_body_just_under_the_cap_is_accepted(
    receiver: str, store: SubscriptionStore, redis_client: redis.Redis
) -> None:
    """A body of exactly the cap is not refused for its size."""
    body = padded_to(CAP)
    response = httpx2.post(receiver + URL, content=body, headers=signed(body))
    assert response.status_code == 200
