"""Starting hookbird's own processes for the benchmarks: environment and receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2

from hookbird.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-webhook-token-0123456789"
HOOKBIRD = (sys.executable, "-c", "import sys; from hookbird.cli import main; sys.exit(main())")


def env_for(redis_url: str, handlers: str) -> dict[str, str]:
    """This environment without hookbird's settings, plus the benchmark's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOKBIRD_", "MONEYBIRD_"))}
    env.update(
        REDIS_URL=redis_url,
        HOOKBIRD_WEBHOOK_TOKEN=TOKEN,
        HOOKBIRD_HANDLERS=handlers,
        HOOKBIRD_ENTRY_POINTS="off",
        HOOKBIRD_LOG_LEVEL="warning",
        HOOKBIRD_LOG_FORMAT="json",
        PYTHONPATH=str(ROOT),
    )
    return env


def start_receiver(redis_url: str, handlers: str) -> tuple[subprocess.Popen[bytes], str]:
    """`hookbird serve` on a free port, once it answers /healthz; its process and base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [*HOOKBIRD, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env_for(redis_url, handlers),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx2.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the receiver did not start")
