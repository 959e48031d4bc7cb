"""POST /webhooks/moneybird end to end: real uvicorn socket, real Redis."""

from __future__ import annotations

import asyncio
import json
import time

import httpx2
import pytest
import redis
from rq.job import Job
from rq.queue import Queue

from hookbird import keys
from hookbird.stored import HEADER_FIELDS, unpack_push
from hookbird.subscriptions import SubscriptionStore
from receiver.endpoint import DESCRIPTION_BYTES, describe
from receiver.payload import parse_push
from tests.receiver.conftest import MakeReceiver
from tests.receiver.pushes import (
    SECRET,
    SECRET_KEY,
    TOKEN,
    as_stored,
    push_body,
    signature_header,
)
from tests.support import all_bytes, send_raw

URL = "/webhooks/moneybird"


def post(http: httpx2.Client, base: str, body: bytes, **headers: str) -> httpx2.Response:
    return http.post(base + URL, content=body, headers=headers)


def queued(client: redis.Redis) -> list[str]:
    return [raw.decode() for raw in all_bytes(client.lrange(keys.rq_queue_key("hookbird"), 0, -1))]


def hookbird_keys(client: redis.Redis) -> list[bytes]:
    return sorted(all_bytes(client.keys("*")))


def test_accepted_push_is_stored_and_enqueued(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """A valid push: 200 accepted, raw push stored with its headers, one RQ job queued."""
    body = push_body()
    response = post(
        http, receiver, body, **{"Idempotency-Key": "idem-1", "User-Agent": "Moneybird webhook"}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "accepted"
    event_id = response.json()["event_id"]

    stored = unpack_push(redis_client.get(keys.event_key(event_id)))
    assert stored["body"] == as_stored(body)
    assert stored["idempotency_key"] == "idem-1"
    assert stored["user_agent"] == "Moneybird webhook"
    assert stored["remote_addr"] == "127.0.0.1"
    assert stored["action"] == "sales_invoice_state_changed_to_paid"
    assert stored["administration_id"] == "123456789"
    dedup = keys.dedup_key(
        "idem-1", body, keys.idempotency_scope("4180000000000000001", "123456789")
    )
    assert stored["dedup_key"] == dedup
    assert set(stored) == {*HEADER_FIELDS, "body"}
    assert 0 < redis_client.ttl(keys.event_key(event_id)) <= 7 * 24 * 3600
    assert redis_client.get(dedup) == event_id.encode()
    assert 7 * 24 * 3600 - 10 < redis_client.ttl(dedup) <= 7 * 24 * 3600

    assert queued(redis_client) == [event_id]
    job = Job.fetch(event_id, connection=redis_client)
    assert job.func_name == "workers.jobs.process_event"
    assert job.origin == "hookbird"
    assert job.get_status() == "queued"
    assert job.description == "sales_invoice_state_changed_to_paid 496081234567890123"
    assert job.meta == {}
    # every value within hash-max-listpack-value: Redis keeps the job hash compact, which
    # Redis 7+ and Valkey call listpack and Redis 6.2 ziplist (the big one is hashtable)
    encoding = redis_client.object("encoding", keys.rq_job_key(event_id))
    assert encoding in (b"listpack", b"ziplist")
    assert Queue("hookbird", connection=redis_client).count == 1


def test_duplicate_idempotency_key_is_refused_politely(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """The same Idempotency-Key again (a Moneybird retry): 200 duplicate, nothing new."""
    first = post(http, receiver, push_body(), **{"Idempotency-Key": "idem-2"})
    before = hookbird_keys(redis_client)
    again = post(http, receiver, push_body(state="changed"), **{"Idempotency-Key": "idem-2"})
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    assert hookbird_keys(redis_client) == before
    assert len(queued(redis_client)) == 1


def test_without_idempotency_key_the_body_hash_dedups(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """No Idempotency-Key: identical bodies are duplicates, different bodies are not."""
    assert post(http, receiver, push_body()).json()["status"] == "accepted"
    assert post(http, receiver, push_body()).json()["status"] == "duplicate"
    assert post(http, receiver, push_body(state="open")).json()["status"] == "accepted"
    assert len(queued(redis_client)) == 2


def test_a_signed_push_replayed_with_a_fresh_idempotency_key_is_a_duplicate(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """Keys orig-1, orig-1, attacker-2 on one signed push: accepted, duplicate, duplicate."""
    body = push_body()
    signature = signature_header(body)
    with make_receiver(webhook_secrets=(SECRET,)) as base:
        answers = [
            post(http, base, body, **{"Idempotency-Key": key, "Moneybird-Signature": signature})
            for key in ("orig-1", "orig-1", "attacker-2")
        ]
        # Moneybird's own retry is signed afresh: its Idempotency-Key still dedups it
        resigned = signature_header(body, t=int(time.time()) - 60)
        retry = post(
            http, base, body, **{"Idempotency-Key": "orig-1", "Moneybird-Signature": resigned}
        )
    first = answers[0].json()["event_id"]
    assert [a.json() for a in answers] == [
        {"status": "accepted", "event_id": first},
        {"status": "duplicate", "event_id": first},
        {"status": "duplicate", "event_id": first},
    ]
    assert retry.json() == {"status": "duplicate", "event_id": first}
    assert queued(redis_client) == [first]


def test_idempotency_keys_are_scoped_by_webhook(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """Two webhooks (and the environment token's administrations) sending the same key value
    are different pushes; the same key again within one of them is a duplicate."""
    store = SubscriptionStore(redis_client, SECRET_KEY)
    for webhook_id in ("81", "82"):
        store.add(webhook_id=webhook_id, administration_id="123456789", token="store-token-81")
    key = {"Idempotency-Key": "same-key"}
    with make_receiver(subscription_cache_ttl=0) as base:
        one = push_body(webhook_id="81", webhook_token="store-token-81")
        two = push_body(webhook_id="82", webhook_token="store-token-81")
        assert post(http, base, one, **key).json()["status"] == "accepted"
        assert post(http, base, two, **key).json()["status"] == "accepted"
        assert post(http, base, two, **key).json()["status"] == "duplicate"
        for administration_id in ("111", "222"):
            data = json.loads(push_body(administration_id=administration_id))
            del data["webhook_id"]
            body = json.dumps(data).encode()
            assert post(http, base, body, **key).json()["status"] == "accepted"
    assert len(queued(redis_client)) == 4


def test_a_key_stored_before_keys_were_scoped_still_dedups(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """An Idempotency-Key an older receiver stored (unscoped) is a duplicate after an upgrade:
    a Redis that holds pushes but no mark of scoped keys is marked, and read, for a while."""
    older = "0190f3c2a1b2c3d4e5f60718293a"
    redis_client.zadd(keys.EVENTS_INDEX, {older: time.time()})
    redis_client.set(keys.legacy_dedup_key("old-key"), older, ex=60)
    answer = post(http, receiver, push_body(), **{"Idempotency-Key": "old-key"})
    assert answer.json() == {"status": "duplicate", "event_id": older}
    assert queued(redis_client) == []
    since = int(redis_client.get(keys.SCOPED_SINCE) or b"-1")
    assert abs(since - time.time()) < 60


def test_a_new_redis_never_reads_unscoped_keys(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """No older receiver wrote to an empty Redis: its mark is 0 and an unscoped key (which
    only a sender that guessed its hash could make) is not read once the receiver has asked
    Redis (with its first script call; until then it reads them, to be safe)."""
    assert post(http, receiver, push_body(entity_id="1")).json()["status"] == "accepted"
    redis_client.set(keys.legacy_dedup_key("old-key"), "0190f3c2a1b2c3d4e5f60718293a", ex=60)
    answer = post(http, receiver, push_body(), **{"Idempotency-Key": "old-key"})
    assert answer.json()["status"] == "accepted"
    assert redis_client.get(keys.SCOPED_SINCE) == b"0"
    assert len(queued(redis_client)) == 2
    again = post(http, receiver, push_body(), **{"Idempotency-Key": "old-key"})
    assert again.json()["status"] == "duplicate"


def every_value(client: redis.Redis) -> bytes:
    """Every key name and value in Redis, whatever its type, as one byte string."""
    found: list[object] = []
    for key in client.keys("*"):
        kind = client.type(key)
        found.append(key)
        if kind == b"string":
            found.append(client.get(key) or b"")
        elif kind == b"hash":
            found += [b for pair in client.hgetall(key).items() for b in pair]
        elif kind == b"list":
            found += client.lrange(key, 0, -1)
        elif kind == b"set":
            found += client.smembers(key)
        elif kind == b"zset":
            found += client.zrange(key, 0, -1)
    return b"\n".join(all_bytes(found))


def test_no_key_in_redis_holds_the_token_or_the_signature_after_a_push(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """The stored body's webhook_token is blanked and of the signature only t is kept; the
    body hash still dedups the push as received."""
    body = push_body()
    header = signature_header(body)
    with make_receiver(webhook_secrets=(SECRET,)) as base:
        first = post(http, base, body, **{"Moneybird-Signature": header})
        again = post(http, base, body, **{"Moneybird-Signature": signature_header(body, t=1)})
        resigned = signature_header(body, t=int(time.time()) - 5)
        retry = post(http, base, body, **{"Moneybird-Signature": resigned})
    assert first.json()["status"] == "accepted"
    assert again.status_code == 401  # stale: not stored either
    assert retry.json() == {"status": "duplicate", "event_id": first.json()["event_id"]}
    everything = every_value(redis_client)
    token_kept = TOKEN.encode() in everything
    signature_kept = header.split("v1=")[1].encode() in everything
    assert not token_kept, "the webhook token is stored in Redis"
    assert not signature_kept, "the signature's v1 is stored in Redis"
    stored = unpack_push(redis_client.get(keys.event_key(first.json()["event_id"])))
    assert stored["signature"] == header.split(",")[0]  # t=…
    assert json.loads(stored["body"]) == {**json.loads(body), "webhook_token": ""}


def test_integer_ids_are_accepted_and_stored_as_strings(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """Old payloads with plain integers are accepted; the stored fields are strings."""
    body = push_body(
        administration_id=123456789, webhook_id=4180000000000000001, entity_id=496081234567890123
    )
    response = post(http, receiver, body)
    assert response.status_code == 200
    stored = unpack_push(redis_client.get(keys.event_key(response.json()["event_id"])))
    assert stored["entity_id"] == "496081234567890123"
    assert stored["webhook_id"] == "4180000000000000001"


def test_test_webhook_is_answered_and_nothing_is_queued(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """Moneybird's registration call gets 200 test and leaves Redis untouched."""
    body = b'{"action":"test_webhook","administration_id":"123456789","token":"anything"}'
    response = post(http, receiver, body)
    assert response.status_code == 200
    assert response.json() == {"status": "test"}
    assert hookbird_keys(redis_client) == []


def test_content_type_is_not_trusted(receiver: str, http: httpx2.Client) -> None:
    """The body decides: a valid push sent as text/plain is accepted, junk as JSON is not."""
    assert post(http, receiver, push_body(), **{"Content-Type": "text/plain"}).status_code == 200
    bad = post(http, receiver, b"not json", **{"Content-Type": "application/json"})
    assert bad.status_code == 400


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'"x"',
        b'{"administration_id": "1"}',
        b'{"action": "x"}',
        b'{"action": ["x"], "administration_id": "1"}',
        b"\xff\xfe\x00",
    ],
)
def test_malformed_bodies_get_400_and_queue_nothing(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis, body: bytes
) -> None:
    """Not JSON, not an object, missing action or administration: 400 with a JSON error."""
    response = post(http, receiver, body)
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    assert hookbird_keys(redis_client) == []


def padded(size: int) -> bytes:
    body = push_body()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_body_at_the_cap_is_accepted_and_one_byte_more_is_413(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """HOOKBIRD_MAX_BODY_BYTES is inclusive: exactly at the cap passes, one over gets 413."""
    with make_receiver(max_body_bytes=4096) as base:
        assert post(http, base, padded(4096)).status_code == 200
        assert len(queued(redis_client)) == 1
        response = post(http, base, padded(4097))
        assert response.status_code == 413
        assert len(queued(redis_client)) == 1


def test_chunked_body_past_the_cap_is_cut_off_with_413(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """A chunked body without Content-Length is read only until it passes the cap."""
    with make_receiver(max_body_bytes=4096) as base:
        head = (f"POST {URL} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
        chunk = b"a" * 1024
        chunks = [b"400\r\n" + chunk + b"\r\n"] * 8 + [b"0\r\n\r\n"]
        status = send_raw(base, head, chunks=chunks)
    assert status == 413
    assert hookbird_keys(redis_client) == []


def test_large_content_length_is_refused_before_reading(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """A declared Content-Length over the cap gets 413 without the body being sent."""
    with make_receiver(max_body_bytes=4096) as base:
        head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n"
        status = send_raw(base, head.encode())
    assert status == 413
    assert hookbird_keys(redis_client) == []


def test_trickling_body_times_out_with_408(
    make_receiver: MakeReceiver, redis_client: redis.Redis
) -> None:
    """A body sent slower than HOOKBIRD_BODY_TIMEOUT is cut off with 408."""
    body = push_body()
    with make_receiver(body_timeout=0.5) as base:
        head = f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        pieces = [body[i : i + 100] for i in range(0, len(body), 100)]
        started = time.monotonic()
        status = send_raw(base, head.encode(), pause=0.2, chunks=pieces)
    assert status == 408
    assert time.monotonic() - started < 5
    assert hookbird_keys(redis_client) == []


def test_wrong_token_gets_401_and_nothing_more(
    receiver: str, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """Wrong webhook_token: 401 whose body says only "unauthorized"."""
    response = post(http, receiver, push_body(webhook_token="not-the-token"))
    assert response.status_code == 401
    assert response.json() == {"status": "error", "error": "unauthorized"}
    assert hookbird_keys(redis_client) == []


def test_missing_token_gets_401(receiver: str, http: httpx2.Client) -> None:
    """A push without webhook_token is refused."""
    data = json.loads(push_body())
    del data["webhook_token"]
    assert post(http, receiver, json.dumps(data).encode()).status_code == 401


def test_single_webhook_secret_requires_a_valid_signature(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """With HOOKBIRD_WEBHOOK_SECRET set: unsigned 401, stale 401, fresh and right 200."""
    body = push_body()
    with make_receiver(webhook_secrets=(SECRET,)) as base:
        assert post(http, base, body).status_code == 401
        stale = signature_header(body, t=int(time.time()) - 301)
        assert post(http, base, body, **{"Moneybird-Signature": stale}).status_code == 401
        wrong = signature_header(body, secret="another-secret-value")
        assert post(http, base, body, **{"Moneybird-Signature": wrong}).status_code == 401
        assert hookbird_keys(redis_client) == []
        good = signature_header(body)
        assert post(http, base, body, **{"Moneybird-Signature": good}).status_code == 200


def test_multi_webhook_mode_checks_the_subscription(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """Subscriptions in Redis: unknown webhook, other administration, disabled → 401."""
    store = SubscriptionStore(redis_client, SECRET_KEY)
    store.add(
        webhook_id="77",
        administration_id="123456789",
        token="store-token-value-1",
        secrets=(SECRET,),
    )
    with make_receiver(webhook_token=None, subscription_cache_ttl=0) as base:
        body = push_body(webhook_id="77", webhook_token="store-token-value-1")
        signed = {"Moneybird-Signature": signature_header(body)}
        assert post(http, base, body, **signed).status_code == 200

        unknown = push_body(webhook_id="78", webhook_token="store-token-value-1")
        assert post(http, base, unknown).status_code == 401

        other_admin = push_body(
            webhook_id="77", webhook_token="store-token-value-1", administration_id="999"
        )
        header = {"Moneybird-Signature": signature_header(other_admin)}
        assert post(http, base, other_admin, **header).status_code == 401

        unsigned = push_body(webhook_id="77", webhook_token="store-token-value-1", state="x")
        assert post(http, base, unsigned).status_code == 401

        store.set_enabled("77", False)
        again = push_body(webhook_id="77", webhook_token="store-token-value-1", state="y")
        header = {"Moneybird-Signature": signature_header(again)}
        assert post(http, base, again, **header).status_code == 401
    assert len(queued(redis_client)) == 1


def test_required_signature_refuses_unsigned_pushes_whatever_the_token_source(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """HOOKBIRD_REQUIRE_SIGNATURE: a stored webhook without secrets and the environment
    token without HOOKBIRD_WEBHOOK_SECRET both get 401; a signed webhook's push 200."""
    store = SubscriptionStore(redis_client, SECRET_KEY)
    store.add(webhook_id="91", administration_id="123456789", token="store-token-91")
    store.add(
        webhook_id="92", administration_id="123456789", token="store-token-92", secrets=(SECRET,)
    )
    with make_receiver(require_signature=True, subscription_cache_ttl=0) as base:
        unsigned_store = push_body(webhook_id="91", webhook_token="store-token-91")
        assert post(http, base, unsigned_store).status_code == 401
        assert post(http, base, push_body(webhook_id="93")).status_code == 401  # environment
        signed = push_body(webhook_id="92", webhook_token="store-token-92")
        header = {"Moneybird-Signature": signature_header(signed)}
        assert post(http, base, signed, **header).status_code == 200
    assert len(queued(redis_client)) == 1


def test_subscription_wins_over_the_environment_token(
    make_receiver: MakeReceiver, http: httpx2.Client, redis_client: redis.Redis
) -> None:
    """A stored webhook's own token is required even when HOOKBIRD_WEBHOOK_TOKEN is set."""
    SubscriptionStore(redis_client).add(
        webhook_id="55", administration_id="123456789", token="store-token-value-2"
    )
    with make_receiver(subscription_cache_ttl=0) as base:
        assert post(http, base, push_body(webhook_id="55")).status_code == 401
        body = push_body(webhook_id="55", webhook_token="store-token-value-2")
        assert post(http, base, body).status_code == 200


def test_fifty_concurrent_identical_pushes_make_one_job(
    receiver: str, redis_client: redis.Redis
) -> None:
    """Fifty copies of one push at once: exactly one accepted, one job, 49 duplicates."""
    body = push_body()

    async def send_all() -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=50)
        async with httpx2.AsyncClient(timeout=10, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(receiver + URL, content=body, headers={"Idempotency-Key": "same"})
                    for _ in range(50)
                )
            )

    responses = asyncio.run(send_all())
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert len(queued(redis_client)) == 1
    assert len(redis_client.keys("rq:job:*")) == 1


def test_wrong_method_gets_405(receiver: str, http: httpx2.Client) -> None:
    """GET on the push endpoint is 405; POST on health is 405 too."""
    assert http.get(receiver + URL).status_code == 405
    assert http.post(receiver + "/healthz").status_code == 405


def test_health_ready_and_metrics(receiver: str, http: httpx2.Client) -> None:
    """healthz and readyz answer 200; metrics counts pushes by outcome."""
    assert http.get(receiver + "/healthz").json() == {"status": "ok"}
    assert http.get(receiver + "/readyz").json() == {"status": "ready"}
    post(http, receiver, push_body())
    post(http, receiver, push_body())
    post(http, receiver, b"nope")
    text = http.get(receiver + "/metrics").text
    assert 'hookbird_pushes_total{outcome="accepted"} 1.0' in text
    assert 'hookbird_pushes_total{outcome="duplicate"} 1.0' in text
    assert 'hookbird_pushes_total{outcome="bad_request"} 1.0' in text
    assert "hookbird_ack_seconds_bucket" in text


def test_each_push_is_logged_only_when_asked(
    make_receiver: MakeReceiver, http: httpx2.Client
) -> None:
    """HOOKBIRD_LOG_EACH_PUSH off: no line per push; on: one line per stored push."""
    import io

    from hookbird.logs import configure_logging

    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    try:
        with make_receiver() as base:
            post(http, base, push_body(state="quiet"))
        quiet = buffer.getvalue()
        with make_receiver(log_each_push=True) as base:
            post(http, base, push_body(state="loud"))
    finally:
        configure_logging("info", "json")
    assert "push accepted" not in quiet
    assert buffer.getvalue().count('"push accepted"') == 1


def test_summary_line_counts_pushes_by_outcome() -> None:
    """The periodic summary reports what changed since the last line, and nothing when idle."""
    import io

    from hookbird.logs import configure_logging
    from receiver.app import log_summaries
    from receiver.metrics import ReceiverMetrics

    metrics = ReceiverMetrics()
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)

    async def run() -> None:
        task = asyncio.ensure_future(log_summaries(metrics, interval=0.05))
        await asyncio.sleep(0)  # let it take its first reading
        metrics.pushes["accepted"] += 3
        metrics.pushes["unauthorized"] += 1
        deadline = time.monotonic() + 10
        while '"pushes received"' not in buffer.getvalue():  # the next tick logs it
            assert time.monotonic() < deadline, "no summary line"
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.15)  # idle for three intervals: no second line
        task.cancel()

    try:
        asyncio.run(run())
    finally:
        configure_logging("info", "json")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert len(lines) == 1
    assert lines[0]["event"] == "pushes received"
    assert lines[0]["accepted"] == 3
    assert lines[0]["unauthorized"] == 1
    assert "duplicate" not in lines[0]


def test_a_job_description_stays_within_redis_compact_hash_values() -> None:
    """Action and entity id, cut to 64 bytes without splitting a character."""
    short = parse_push(push_body(action="contact_created", entity_id="42"))
    assert describe(short) == "contact_created 42"
    no_entity = parse_push(b'{"action":"administration_added","administration_id":"7"}')
    assert describe(no_entity) == "administration_added"
    long = parse_push(push_body(action="é" * 40, entity_id="18446744073709551615"))
    text = describe(long)
    assert len(text.encode()) <= DESCRIPTION_BYTES
    assert text == "_" * 40 + " 18446744073709551615"  # hookbird.labels: ASCII only
