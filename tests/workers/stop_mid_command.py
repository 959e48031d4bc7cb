"""``hookbird`` whose worker gets SIGTERM between sending its first wait for a push and the reply.

RQ stops an idle worker by raising from the signal handler, wherever the main thread
is. Arriving after redis-py sent a command and before it reads the reply, that leaves
the connection in the pool with the BLMOVE (BLPOP for several queues) still blocking on
the server. The test that runs a worker here makes that rare moment the only one. Only
redis-py is changed.

Run as ``python -c "import tests.workers.stop_mid_command as m; m.main()" worker …``.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from redis.connection import AbstractConnection

_send_command: Callable[..., None] = AbstractConnection.send_command
_fired = False


def _send_then_signal(self: AbstractConnection, *args: Any, **kwargs: Any) -> None:
    global _fired
    _send_command(self, *args, **kwargs)
    if args and str(args[0]).upper() in ("BLMOVE", "BLPOP") and not _fired:
        _fired = True
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    AbstractConnection.send_command = _send_then_signal  # type: ignore[method-assign]
    from hookbird.cli import main as hookbird

    sys.exit(hookbird())
