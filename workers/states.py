"""The named states of a push, of its handlers and of its turn: one place to read them all.

Like RQ's ``JobStatus``, each is a ``str`` enum: a member is its value wherever it
goes (Redis, JSON, f-strings, log lines): what hookbird stores and shows is the
plain word (``Status.DEAD`` is ``"dead"``), byte for byte as before states had names.

=====================  ============  ==============================================
``Status``             stored in     ``hookbird:state:<event_id>`` field ``status``
``HandlerStatus``      stored in     the ``handlers`` JSON of that hash, per handler
``BeginVerdict``       answered by   :meth:`Store.begin`: may the push run now?
``Done``               sent to       :meth:`Store.finish`: what becomes of its turn
=====================  ============  ==============================================

A job's own result (what RQ pickles) carries ``.value``, never a member: a pickled
member would name this module, and RQ results must stay plain data.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """A push's status: ``hookbird events list --status``, the ``status`` of its record."""

    #: waiting in RQ's queue to run (again): a worker stopped or died under it, or requeued
    QUEUED = "queued"
    #: parked: an earlier push for the same entity has not finished
    WAITING = "waiting"
    #: a handler failed and runs again after a backoff (only the failed handlers)
    RETRYING = "retrying"
    #: every handler succeeded or was skipped
    SUCCEEDED = "succeeded"
    #: in the dead letter (RQ's failed registry)
    DEAD = "dead"
    #: shown, never stored: RQ says the job is "started"
    RUNNING = "running"
    #: shown, never stored: the raw push is gone (older than ``HOOKBIRD_EVENT_RETENTION``)
    EXPIRED = "expired"


class HandlerStatus(enum.StrEnum):
    """One handler's outcome on one push, kept across the push's runs."""

    OK = "ok"
    #: a ``latest_only`` handler has already handled a newer version of the entity
    SKIPPED = "skipped"
    #: failed; runs again with the push's retry
    FAILED = "failed"
    #: failed for good (a permanent error, or out of attempts)
    DEAD = "dead"
    #: stopped by the end of a worker's shutdown grace; the attempt is not counted
    INTERRUPTED = "interrupted"
    #: a batch handler's: waiting in its batch, which has not run yet (workers.batching)
    BATCHED = "batched"


class BeginVerdict(enum.StrEnum):
    """What :meth:`~workers.store.Store.begin` answers a run that wants to start."""

    #: the push's turn: the entity is held for this run
    GO = "go"
    #: an earlier push for the same entity is unfinished or running: park
    WAIT = "wait"
    #: the raw push is gone: nothing to run
    EXPIRED = "expired"


class Done(enum.StrEnum):
    """What :meth:`~workers.store.Store.finish` does with the push's place in its entity's line."""

    #: handled: leaves the line, the next push for the entity may run
    HANDLED = "yes"
    #: runs again (retry, interrupted, or hookbird's own failure): keeps its place
    AGAIN = "no"
    #: dead-lettered: leaves the line; its raw push lives as long as the dead letter
    DEAD = "dead"
    #: parked: keeps its place; told at once if its turn came meanwhile
    PARKED = "park"
