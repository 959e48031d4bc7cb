"""Helpers for tests that run hookbird as real processes and check none is left behind."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def processes_with(marker: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose environment contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
        except OSError:
            continue
        if alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _describe(pids: list[int]) -> str:
    """Each process's pid and command line, one per line, for a failure message."""
    lines = []
    for pid in pids:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        lines.append(f"  {pid}: {' '.join(a.decode(errors='replace') for a in argv if a)}")
    return "\n".join(lines)


def wait_gone(
    marker: str,
    timeout: float,
    output: Callable[[], str] | None = None,
    pids: tuple[int, ...] = (),
) -> None:
    """Wait until no process carries ``marker`` and none of ``pids`` lives; else fail
    naming each one left running.

    ``pids`` is for processes the marker cannot find: redis-server writes its title
    over the memory that held its environment. ``output`` gives the log the processes
    wrote, whose end goes into the message.
    """

    def left() -> list[int]:
        return processes_with(marker) + [pid for pid in pids if alive(pid)]

    try:
        wait_for(lambda: not left(), timeout=timeout)
    except AssertionError:
        message = f"still running {timeout:g} s later:\n{_describe(left())}"
        if output is not None:
            message += f"\ntheir output, last lines:\n{output()[-4000:]}"
        raise AssertionError(message) from None


def wait_for(check: Callable[[], Any], timeout: float = 20, message: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)
