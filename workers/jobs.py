"""Job functions RQ runs. The receiver enqueues :func:`process_event` by dotted path.

Each job's id is the event id; the raw push waits in ``hookbird:event:<id>``.
"""

from __future__ import annotations

from typing import Any

from rq import get_current_job

from hookbird import keys
from hookbird.logs import get_logger

log = get_logger("hookbird.worker")


def process_event() -> dict[str, Any]:
    """Load the stored push for the current job and report what it is.

    Routing to handler plugins builds on this (the workers issue).
    """
    job = get_current_job()
    if job is None:
        raise RuntimeError("process_event runs inside an RQ job")
    stored = job.connection.hgetall(keys.event_key(job.id))
    if not stored:
        log.warning("event expired before it was processed", event_id=job.id)
        return {"event_id": job.id, "status": "expired"}
    raw_action = stored.get(b"action", b"")
    action = raw_action.decode() if isinstance(raw_action, bytes) else str(raw_action)
    log.info("event processed", event_id=job.id, action=action)
    return {"event_id": job.id, "action": action, "status": "processed"}
