"""Prometheus metrics of the whole service, registered once on the default registry."""

from __future__ import annotations

import functools

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

KIE_CALLBACKS = Counter(
    "kie_callbacks_total",
    "KIE callbacks received, by how they were verified and where they were stored.",
    ["verified", "outcome"],
)
KIE_CALLBACK_STRATEGY = Counter(
    "kie_callback_parse_strategy_total", "Which parser strategy found the task id.", ["strategy"]
)
KIE_CALLBACK_ACK_SECONDS = Histogram(
    "kie_callback_ack_seconds",
    "Time from receiving a callback to acknowledging it (stored durably).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
KIE_CALLBACK_APPLY = Counter("kie_callback_apply_total", "What applying a stored callback did.", ["outcome"])
KIE_CALLBACK_ORPHANS = Gauge(
    "kie_callback_orphans", "Callbacks waiting for a task id we have not recorded yet."
)


# Labelled children are looked up once per label set: the lookup costs more than the increment,
# and the callback hot path counts every request.


@functools.cache
def callback_apply_counter(outcome: str) -> Counter:
    """``kie_callback_apply_total{outcome}``."""
    return KIE_CALLBACK_APPLY.labels(outcome=outcome)


@functools.cache
def callback_strategy_counter(strategy: str) -> Counter:
    """``kie_callback_parse_strategy_total{strategy}``."""
    return KIE_CALLBACK_STRATEGY.labels(strategy=strategy)


@functools.cache
def callbacks_counter(verified: str, outcome: str) -> Counter:
    """``kie_callbacks_total{verified,outcome}``."""
    return KIE_CALLBACKS.labels(verified=verified, outcome=outcome)


@functools.cache
def http_request_timer(route: str, method: str, status: int) -> Histogram:
    """``http_request_duration_seconds{route,method,status}`` (bounded: route templates)."""
    return HTTP_REQUEST_SECONDS.labels(route=route, method=method, status=str(status))


TELEGRAM_UPDATES = Counter(
    "telegram_updates_total",
    "Telegram updates by outcome (stored, duplicate, handled, retried, failed).",
    ["outcome"],
)
TELEGRAM_INBOX_DEPTH = Gauge("telegram_inbox_depth", "Telegram updates stored and not handled yet.")
TELEGRAM_INBOX_OLDEST = Gauge(
    "telegram_inbox_oldest_seconds", "Age of the oldest Telegram update not handled yet."
)
TELEGRAM_DELIVERIES = Counter(
    "telegram_deliveries_total", "Result deliveries to Telegram chats by outcome.", ["outcome"]
)
TELEGRAM_API_CALLS = Counter(
    "telegram_api_calls_total",
    "Bot API calls by method and status (ok, or the error code).",
    ["method", "status"],
)
TELEGRAM_RATE_LIMITED = Counter("telegram_rate_limited_total", "Bot API answers 429 (retry_after honoured).")

WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries_total",
    "Outbound webhook attempts by outcome (delivered, retried, failed, refused).",
    ["outcome"],
)
WEBHOOK_ATTEMPT_SECONDS = Histogram(
    "webhook_attempt_duration_seconds",
    "Time of one outbound webhook attempt.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOK_OUTBOX_DEPTH = Gauge("webhook_outbox_depth", "Outbound webhook events not delivered yet.")
WEBHOOK_OUTBOX_OLDEST = Gauge("webhook_outbox_oldest_seconds", "Age of the oldest undelivered webhook event.")
