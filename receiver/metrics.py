"""Prometheus metrics for one receiver process, served at ``GET /metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

OUTCOMES = (
    "accepted",
    "duplicate",
    "test",
    "bad_request",
    "unauthorized",
    "too_large",
    "timeout",
    "unavailable",
)


class ReceiverMetrics:
    """The receiver's counters, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pushes = Counter(
            "hookbird_pushes",
            "Pushes received, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self.pushes.labels(outcome)
        self.ack_seconds = Histogram(
            "hookbird_ack_seconds",
            "Time from request start to a 200 for stored or duplicate pushes.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.redis_errors = Counter(
            "hookbird_redis_errors",
            "Redis calls that failed (each answered 503).",
            registry=self.registry,
        )
