"""hookbird: Moneybird webhooks, verified, deduplicated, durably queued and handled once.

Plugin authors import from here and nowhere else.
"""

from __future__ import annotations

from hookbird.settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "__version__"]
__version__ = "0.1.0"
