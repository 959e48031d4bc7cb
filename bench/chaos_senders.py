"""Senders that behave like Moneybird: signed pushes, retried on anything but a 200.

Every push is an asyncio task. An attempt that gets no 200 (another status, a refused
or dropped connection, a timeout) is retried after a growing gap, up to ``retries``
times, then given up. Attempts go to the receivers in turn, as through a load
balancer without health checks. Duplicates are exact copies of an earlier push
(same ``Idempotency-Key`` and body) sent some time after it; a new signature is made
per attempt, as Moneybird does. At most ``connections`` requests are in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from dataclasses import dataclass, field

import httpx2

from hookbird.signing import sign


@dataclass
class Push:
    """One push to deliver, and what became of it."""

    number: int
    key: str
    body: bytes
    duplicate_of: int | None = None
    attempts: int = 0
    non_200: int = 0
    answer: str | None = None  # "accepted" or "duplicate" on the final 200
    event_id: str | None = None
    signatures: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return self.answer is not None


def make_pushes(count: int, duplicates: float, token: str, run: str) -> list[Push]:
    """``count`` unique pushes and ``duplicates * count`` exact copies of some of them."""
    pushes = [
        Push(number, f"chaos-{run}-{number}", push_body(number, token)) for number in range(count)
    ]
    copies = random.sample(pushes, int(count * duplicates))
    pushes += [
        Push(count + i, original.key, original.body, duplicate_of=original.number)
        for i, original in enumerate(copies)
    ]
    return pushes


def push_body(number: int, token: str) -> bytes:
    entity_id = str(496081000000000000 + number)
    data = {
        "administration_id": "123456789",
        "webhook_id": "4180000000000000001",
        "webhook_token": token,
        "entity_type": "SalesInvoice",
        "entity_id": entity_id,
        "state": "paid",
        "action": "sales_invoice_state_changed_to_paid",
        "entity": {
            "id": entity_id,
            "invoice_id": f"2026-{number:06d}",
            "state": "paid",
            "total_price_incl_tax": "121.0",
            "currency": "EUR",
            "version": 1790000000 + number,
        },
    }
    return json.dumps(data).encode()


def schedule(pushes: list[Push], rate: float) -> list[tuple[float, Push]]:
    """Send times (seconds from the start): uniques at ``rate``, each copy after its original."""
    count = sum(1 for p in pushes if p.duplicate_of is None)
    spread = max(1.0, count / rate / 4)
    times = [
        (p.number / rate if p.duplicate_of is None else p.duplicate_of / rate)
        + (random.uniform(0.05, spread) if p.duplicate_of is not None else 0.0)
        for p in pushes
    ]
    return sorted(zip(times, pushes, strict=True), key=lambda pair: pair[0])


@dataclass
class Sender:
    urls: list[str]
    secret: str
    authorization: str
    retries: int = 10
    first_gap: float = 0.25
    max_gap: float = 8.0
    connections: int = 32
    timeout: float = 10.0

    def gap(self, retry: int) -> float:
        return float(min(self.first_gap * 2 ** (retry - 1), self.max_gap))

    async def deliver(
        self, push: Push, client: httpx2.AsyncClient, slots: asyncio.Semaphore, turn: int
    ) -> None:
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.gap(attempt))
            timestamp = int(time.time())
            signature = sign(push.body, self.secret, timestamp)
            push.signatures.append(signature)
            headers = {
                "Content-Type": "application/json",
                "Idempotency-Key": push.key,
                "Moneybird-Signature": f"t={timestamp},v1={signature}",
                "User-Agent": "Moneybird webhook",
                "Authorization": self.authorization,
            }
            url = self.urls[(turn + attempt) % len(self.urls)]
            push.attempts += 1
            async with slots:
                try:
                    response = await client.post(url, content=push.body, headers=headers)
                except httpx2.HTTPError:
                    push.non_200 += 1
                    continue
            if response.status_code == 200:
                answer = response.json()
                push.answer, push.event_id = answer["status"], answer["event_id"]
                return
            push.non_200 += 1

    async def send_all(self, plan: list[tuple[float, Push]]) -> None:
        slots = asyncio.Semaphore(self.connections)
        limits = httpx2.Limits(max_connections=self.connections * 2)
        async with httpx2.AsyncClient(timeout=self.timeout, limits=limits) as client:
            started = time.monotonic()
            tasks = []
            turns = itertools.count()
            for at, push in plan:
                delay = started + at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self.deliver(push, client, slots, next(turns))))
            await asyncio.gather(*tasks)
