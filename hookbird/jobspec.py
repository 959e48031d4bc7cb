"""The RQ job every push becomes: its function path and lifetimes.

The receiver writes the job hash for each push (``receiver.enqueue``) and ``hookbird
events replay`` and ``hookbird failed requeue`` create it again (``workers.admin``);
both must describe the same job. The function is a dotted path, so the receiver never
imports handler code, and it is stored in every queued job: it must stay importable
under this name.
"""

from __future__ import annotations

#: The job function, as a dotted path so the receiver never imports handler code.
JOB_FUNCTION = "workers.jobs.process_event"
#: Longest a single handler run may take before RQ kills the job.
JOB_TIMEOUT = 600
#: How long RQ keeps a finished job's hash (seconds).
JOB_RESULT_TTL = 3600
#: How long a job stays in RQ's failed registry (the dead letter).
JOB_FAILURE_TTL = 30 * 24 * 3600
