"""The chaos run's recording handlers: each run of each handler is counted elsewhere.

Loaded by the workers with ``HOOKBIRD_HANDLERS=bench.chaos_handlers``. Two handlers
take every push. Each run adds one to ``chaos:runs:<handler>`` (field: event id) in a
separate Redis (``CHAOS_COUNTS_URL``) that the chaos run never kills, so "handled",
"lost" and "handled twice" are measured outside the system under test. Each run also
checks that ``ctx.idempotency_key`` is the one an earlier run of the same
(event, handler) saw: the key handlers use to make the crash window harmless.

After its effect a handler waits ``CHAOS_HANDLER_SLEEP`` seconds (default 0.002):
the window in which a killed worker leaves an effect done but its outcome unrecorded.
"""

from __future__ import annotations

import os
import time
from functools import cache

import redis

from hookbird import Context, Event, Router

router = Router()

RUNS = "chaos:runs:"
KEYS = "chaos:keys:"
KEY_CHANGED = "chaos:key-changed"

#: Counts the run and compares the idempotency key with the first run's, in one step.
RECORD = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local first = redis.call('HGET', KEYS[2], ARGV[1])
if not first then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
elseif first ~= ARGV[2] then
  redis.call('INCR', KEYS[3])
end
return 1
"""


@cache
def counts() -> redis.Redis:
    return redis.Redis.from_url(os.environ["CHAOS_COUNTS_URL"])


def record(name: str, event: Event, ctx: Context) -> None:
    """The side effect: one more run of ``name`` for this push."""
    counts().eval(
        RECORD, 3, RUNS + name, KEYS + name, KEY_CHANGED, event.event_id, ctx.idempotency_key
    )
    time.sleep(float(os.environ.get("CHAOS_HANDLER_SLEEP", "0.002")))


@router.on("*")
def ledger(event: Event, ctx: Context) -> None:
    record("ledger", event, ctx)


@router.on("*")
def mailer(event: Event, ctx: Context) -> None:
    record("mailer", event, ctx)


HANDLERS = ("ledger", "mailer")
