"""Child processes of ``hookbird dev``: they die with it and stop in a set order.

``hookbird dev`` runs a private Redis, a worker and rq-dashboard next to the receiver.
Each child gets its own session, so Ctrl-C in the terminal reaches only ``dev``, which
then stops them in order (dashboard, worker, receiver, Redis last, so the worker can
still put a push back). On Linux each child also asks the kernel for SIGTERM when
``dev`` dies (``PR_SET_PDEATHSIG``), so even ``kill -9`` of ``dev`` leaves no orphan.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1


def die_with_parent_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()

    def hook() -> None:  # pragma: no cover - runs in the child between fork and exec
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def spawn(
    command: list[str], *, env: dict[str, str] | None = None, stdout: IO[bytes] | int | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own session that receives SIGTERM when we die."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=stdout,
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL: never leave it running."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def dashboard_installed() -> bool:
    """Is rq-dashboard importable (``pip install 'hookbird[dashboard]'``)?"""
    return importlib.util.find_spec("rq_dashboard") is not None


def dashboard_command(redis_url: str, host: str, port: int) -> list[str]:
    """rq-dashboard through this interpreter (its script's shebang may point elsewhere)."""
    return [
        sys.executable,
        "-c",
        "import sys; from rq_dashboard.cli import main; sys.exit(main())",
        "--redis-url",
        redis_url,
        "--bind",
        host,
        "--port",
        str(port),
    ]


def lock_data_dir(data_dir: Path) -> IO[str] | None:
    """Hold ``data_dir/dev.lock`` while ``dev`` runs; None if another ``dev`` holds it.

    Two private Redis servers writing the same AOF would corrupt it.
    """
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / "dev.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
