"""hookbird: Moneybird webhooks, verified, deduplicated, durably queued and handled once.

Plugin authors import what a handler needs from here::

    from hookbird import Router, Event, Context, RetryLater

and, in their tests, ``hookbird.testing`` (``make_event``, ``make_context`` and a
Moneybird stand-in). (The Moneybird error classes a handler may raise or catch are in
``hookbird.moneybird.errors``; they are not imported here so that the receiver,
which imports this package, never loads the HTTP client.)
"""

from __future__ import annotations

from hookbird.context import Context, RetryLater
from hookbird.events import Event
from hookbird.routing import Router
from hookbird.settings import Settings, SettingsError

__all__ = [
    "Context",
    "Event",
    "RetryLater",
    "Router",
    "Settings",
    "SettingsError",
    "__version__",
]
__version__ = "0.1.0"
