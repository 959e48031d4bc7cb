"""Import boundaries the design depends on."""

from __future__ import annotations

import subprocess
import sys


def test_receiver_never_loads_the_moneybird_client() -> None:
    """Importing the receiver app loads neither hookbird.moneybird nor httpx2."""
    code = (
        "import sys, receiver.app\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('hookbird.moneybird', 'httpx2')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
