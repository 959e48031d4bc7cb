"""Text from a push made safe to show where hookbird does not control the escaping.

rq-dashboard (0.9.0) renders a job's description and meta into its pages without
escaping them, and a push's ``action`` and ``entity_type`` are whatever the sender
put there: ``"<img src=x onerror=alert(1)>"`` with a valid token was enough for stored
XSS. Everything hookbird writes into an RQ job therefore passes :func:`label`, which
keeps only characters that mean nothing to HTML, JavaScript or a URL. Moneybird's
event names, entity types and IDs are made of them, so real pushes read as before.
"""

from __future__ import annotations

import re

#: The longest label; Moneybird's longest event name has 74 characters.
MAX_LABEL = 100

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def label(value: str | None, limit: int = MAX_LABEL) -> str:
    """``value`` with every character outside ``[A-Za-z0-9_.:-]`` replaced by ``_``, cut
    to ``limit`` characters; ``""`` for None."""
    if not value:
        return ""
    return _UNSAFE.sub("_", value[:limit])
