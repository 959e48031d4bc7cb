"""The push the receiver benchmarks send: Moneybird's own example contact, changed.

:func:`template` is a ``contact_changed`` push as Moneybird sends it (compact JSON,
~2 KB) around the example contact of Moneybird's OpenAPI spec, which ``hookbird send``
ships too. Its placeholders are filled in per push, by ``bench/push.lua`` inside wrk and by
:func:`fill` in ``bench/hotpath.py``, so that every push is a different contact:

    @ID@       the contact's id (entity_id, entity.id, its contact person's contact_id)
    @PERSON@   the contact person's id
    @N@        a running number: the customer number and the company name
    @VERSION@  the version (Moneybird's versions are update timestamps)

Real field structure is what costs: this push takes orjson 3.5 µs to parse where a
body padded to 2 KB with one repeated phrase took 1.5, and it compresses 1.8:1 in
Redis's RDB format (and so in its AOF rewrites) where the padded one compressed 4.7:1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hookbird import pushes

ACTION = "contact_changed"
ADMINISTRATION_ID = "123456789"
WEBHOOK_ID = "4180000000000000001"


def template(token: str) -> bytes:
    """The push with placeholders, carrying ``token`` as its webhook_token."""
    entity_type, entity = pushes.entity_for(ACTION, ADMINISTRATION_ID)
    entity["id"] = "@ID@"
    entity["customer_id"] = "@N@"
    entity["company_name"] = "Bedrijf @N@ B.V."
    entity["version"] = "@VERSION@"
    for person in entity.get("contact_people", []):
        person.update(id="@PERSON@", contact_id="@ID@", administration_id=ADMINISTRATION_ID)
        person["version"] = "@VERSION@"
    for event in entity.get("events", []):
        event["administration_id"] = ADMINISTRATION_ID
    push = pushes.build_push(
        ACTION,
        entity,
        entity_type=entity_type,
        administration_id=ADMINISTRATION_ID,
        webhook_id=WEBHOOK_ID,
        token=token,
    )
    compact = json.dumps(json.loads(push.body), separators=(",", ":"), ensure_ascii=False)
    # versions are numbers in Moneybird's JSON
    return compact.replace('"@VERSION@"', "@VERSION@").encode()


def fill(text: bytes, n: int, stream: int = 0) -> bytes:
    """Push number ``n`` of ``stream`` from ``text``, as bench/push.lua makes them."""
    return (
        text.replace(b"@ID@", b"4960%05d%010d" % (stream, n))
        .replace(b"@PERSON@", b"4961%05d%010d" % (stream, n))
        .replace(b"@N@", b"%d" % n)
        .replace(b"@VERSION@", b"%d" % (1790000000 + n))
    )


if __name__ == "__main__":
    sys.stdout.write(fill(template("bench-token"), 1).decode() + "\n")
