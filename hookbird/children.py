"""Child processes of ``hookbird dev``: watched while they run, stopped in a set order.

``hookbird dev`` runs a private Redis, a worker and rq-dashboard next to the receiver.
Each child gets its own session, so Ctrl-C in the terminal reaches only ``dev``, which
then stops them in order (dashboard, worker, receiver, Redis last, so the worker can
still put a push back). On Linux each child also asks the kernel for SIGTERM when
``dev`` dies (``PR_SET_PDEATHSIG``), so even ``kill -9`` of ``dev`` leaves no orphan.

A child that dies while dev runs must not go unnoticed: a receiver answering 200 with
no worker behind it queues pushes for good. :class:`Supervisor` reports each death in
one line (name, pid, exit code, the last lines of its output) and restarts the child
after 1, 2, 4, 8, 16 s. A child that lived :data:`STABLE_AFTER` seconds starts that
count again; after :data:`MAX_RESTARTS` quick deaths in a row restarting is evidently
not helping, so dev stops, exit 1, saying so. A death that a restart cannot cure
(a handler module that no longer imports: ``fatal`` says why) stops dev at once with
that reason, rather than restarting into the same error while the terminal scrolls.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    command: list[str],
    *,
    env: dict[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own session that receives SIGTERM when we die."""
    return subprocess.Popen(
        command,
        env=env,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=die_with_parent_hook(),
    )


class Output:
    """Copies a child's output to our stderr, line by line, keeping the last lines."""

    def __init__(self, lines: int = 15) -> None:
        self.tail: collections.deque[str] = collections.deque(maxlen=lines)

    def follow(self, proc: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """Relay ``proc``'s stdout (started with ``stdout=PIPE``) in a daemon thread."""
        assert proc.stdout is not None
        self.tail.clear()
        threading.Thread(target=self._relay, args=(proc.stdout,), daemon=True).start()
        return proc

    def _relay(self, stream: IO[bytes]) -> None:
        out = sys.stderr.buffer
        with contextlib.suppress(OSError, ValueError), stream:  # closed at the child's exit
            for line in stream:
                self.tail.append(line.decode(errors="replace").rstrip())
                out.write(line)
                out.flush()

    def last(self) -> str:
        return "\n".join(f"    | {line}" for line in self.tail)


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (a bind as uvicorn does it fails)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False  # the server's own bind will say what is wrong with the host
    family, kind, proto, _name, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError:
            return True
    return False


#: Quick deaths in a row after which dev gives up; the waits before each restart.
MAX_RESTARTS = 5
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0)
#: Seconds a child must live for its next death to count as a first one again.
STABLE_AFTER = 60.0


@dataclass
class Child:
    """One supervised child: how to (re)start it and what to say when it dies."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    #: the last lines of its output, or where to read them
    output: Callable[[], str]
    #: why a restart cannot help (checked after a death), or None to restart
    fatal: Callable[[], str | None] = lambda: None
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deaths: int = 0

    def launch(self) -> subprocess.Popen[bytes]:
        self.process = self.start()
        self.started = time.monotonic()
        return self.process


@dataclass
class Supervisor:
    """Watches dev's children from a thread; restarts them or makes dev stop.

    ``on_give_up`` is called (from the supervisor's thread) once it has given up;
    :attr:`failure` then says why, for dev's exit message.
    """

    children: list[Child]
    on_give_up: Callable[[], None]
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)
    poll_every: float = 0.2
    backoff: tuple[float, ...] = BACKOFF
    failure: str | None = None
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="dev-supervisor", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop watching (before dev stops the children itself)."""
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def _watch(self) -> None:
        while not self._done.wait(self.poll_every):
            for child in self.children:
                if child.process is None or self._done.is_set():
                    continue
                code = child.process.poll()
                if code is None:
                    if time.monotonic() - child.started >= STABLE_AFTER:
                        child.deaths = 0
                    continue
                if not self._restart(child, code):
                    self._done.set()
                    self.on_give_up()
                    return

    def _restart(self, child: Child, code: int) -> bool:
        pid = child.process.pid if child.process else "?"
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        lived = time.monotonic() - child.started
        self.say(
            f"hookbird dev: the {child.name} (pid {pid}) died after {lived:.0f} s with {how}; "
            f"its last output:\n{child.output() or '    (none)'}"
        )
        reason = child.fatal()
        if reason is not None:
            self.failure = f"the {child.name} cannot run: {reason}"
            return False
        if child.deaths >= MAX_RESTARTS:
            self.failure = (
                f"the {child.name} died {child.deaths + 1} times in a row, each within "
                f"{STABLE_AFTER:.0f} s of starting; not restarting it again (its last output "
                "is above)"
            )
            return False
        wait = self.backoff[min(child.deaths, len(self.backoff) - 1)]
        child.deaths += 1
        self.say(
            f"hookbird dev: restarting the {child.name} in {wait:g} s "
            f"(restart {child.deaths} of at most {MAX_RESTARTS} in a row)"
        )
        if self._done.wait(wait):
            return True
        try:
            proc = child.launch()
        except (OSError, RuntimeError) as exc:
            self.failure = f"the {child.name} could not be restarted: {exc}"
            return False
        self.say(f"hookbird dev: the {child.name} runs again, pid {proc.pid}")
        return True


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
    """Is rq-dashboard importable (``.venv/bin/pip install -e '.[dashboard]'``)?"""
    return importlib.util.find_spec("rq_dashboard") is not None


#: Where dev's rq-dashboard listens, whatever ``--host`` says: it can delete and requeue
#: jobs and has no password in dev.
DASHBOARD_HOST = "127.0.0.1"


def dashboard_command(port: int) -> list[str]:
    """rq-dashboard through this interpreter (its script's shebang may point elsewhere),
    on :data:`DASHBOARD_HOST` only. The Redis URL, password included, goes through
    :func:`dashboard_env`, not argv, which every local user can read in ``/proc``."""
    return [
        sys.executable,
        "-c",
        "import sys; from rq_dashboard.cli import main; sys.exit(main())",
        "--bind",
        DASHBOARD_HOST,
        "--port",
        str(port),
    ]


def dashboard_env(redis_url: str) -> dict[str, str]:
    """Our environment plus ``RQ_DASHBOARD_REDIS_URL``, which rq-dashboard reads."""
    env = dict(os.environ)
    env["RQ_DASHBOARD_REDIS_URL"] = redis_url
    return env


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
