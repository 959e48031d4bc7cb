"""``hookbird`` with a worker's UNSUBSCRIBE answered before the worker moves on, every time.

On a loaded machine a worker's main thread can lose the CPU right after it sends
UNSUBSCRIBE on its command channel, and its pubsub thread then reads the reply first.
The tests that measure how long a worker takes to stop run it here, so that unlucky
order is the only order: after sending UNSUBSCRIBE, the caller waits until the reply
has been read (or a second has passed). Only redis-py is changed, never hookbird.

Run as ``python -c "import tests.workers.late_unsubscribe as m; m.main()" worker …``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from redis.client import PubSub

_unsubscribe: Callable[..., Any] = PubSub.unsubscribe


def _unsubscribe_then_wait_for_the_reply(self: PubSub, *args: Any) -> Any:
    result = _unsubscribe(self, *args)
    deadline = time.monotonic() + 1.0
    while self.subscribed and time.monotonic() < deadline:
        time.sleep(0.005)
    return result


def main() -> None:
    PubSub.unsubscribe = _unsubscribe_then_wait_for_the_reply  # type: ignore[method-assign]
    from hookbird.cli import main as hookbird

    sys.exit(hookbird())
