"""Prometheus metrics for one receiver process, served at ``GET /metrics``.

The request path only bumps plain integers (no locks, no label look-ups); the
Prometheus families are built when ``/metrics`` is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

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
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ReceiverMetrics(Collector):
    """Pushes by outcome, time to a 200, Redis failures; one registry per app."""

    def __init__(self) -> None:
        self.pushes = dict.fromkeys(OUTCOMES, 0)
        self.redis_errors = 0
        self._ack_counts = [0] * (len(ACK_BUCKETS) + 1)
        self._ack_sum = 0.0
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)

    def observe_ack(self, seconds: float) -> None:
        self._ack_counts[bisect_left(ACK_BUCKETS, seconds)] += 1
        self._ack_sum += seconds

    def collect(self) -> Iterator[Metric]:
        pushes = CounterMetricFamily(
            "hookbird_pushes", "Pushes received, by outcome.", labels=["outcome"]
        )
        for outcome, count in self.pushes.items():
            pushes.add_metric([outcome], count)
        yield pushes

        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, ACK_BUCKETS), "+Inf"), self._ack_counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "hookbird_ack_seconds",
            "Time from request start to a 200 for stored or duplicate pushes.",
            buckets=buckets,
            sum_value=self._ack_sum,
        )
        yield CounterMetricFamily(
            "hookbird_redis_errors",
            "Redis calls that failed (each push answered 503).",
            value=self.redis_errors,
        )
