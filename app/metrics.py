"""Prometheus metrics of the whole service, registered once on the default registry."""

from __future__ import annotations

from prometheus_client import Counter, Enum, Gauge, Histogram

HTTP_REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_UNHANDLED_ERRORS = Counter(
    "http_unhandled_errors_total", "Requests that ended in an unexpected exception.", ["route"]
)
DATABASE_UP = Gauge("database_up", "1 when the last database health probe succeeded.")

LEADER_ROLE = Enum(
    "leader_role", "This instance's role in the leader election.", states=["starting", "passive", "active"]
)
LEADER_EPOCH = Gauge("leader_epoch", "The epoch of the term this instance holds (0 when not active).")
LEADER_TRANSITIONS = Counter(
    "leader_transitions_total", "Role changes of this instance.", ["from_role", "to_role"]
)
