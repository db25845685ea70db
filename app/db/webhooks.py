"""SQL of outbound webhooks: per-owner signing secrets, the event outbox (written by a trigger in
the same transaction as the generation's change, see migration 0010), and the delivery attempts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.db.connection import Executor

EVENTS_CHANNEL = "webhook_events"

_SECRET_INSERT = "INSERT INTO webhook_secrets (owner, secret) VALUES ($1, $2) ON CONFLICT (owner) DO NOTHING"  # noqa: S105 - SQL, not a secret
_SECRET_READ = "SELECT secret FROM webhook_secrets WHERE owner = $1"  # noqa: S105 - SQL, not a secret

_CLAIM = """
UPDATE webhook_events SET claim = $1, lease_until = now() + make_interval(secs => $2)
WHERE id IN (
    SELECT id FROM webhook_events
    WHERE state = 'pending' AND next_attempt_at <= now()
      AND (lease_until IS NULL OR lease_until < now()
           OR ($4::text IS NOT NULL AND claim LIKE 'leader:%' AND NOT starts_with(claim, $4)))
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING *
"""

_SET_PAYLOAD = "UPDATE webhook_events SET payload = $3 WHERE id = $1 AND claim = $2 AND payload IS NULL"

_ATTEMPT = """
INSERT INTO webhook_attempts (event_id, status_code, latency_ms, error) VALUES ($1, $2, $3, $4)
"""

_DELIVERED = """
UPDATE webhook_events SET state = 'delivered', attempts = attempts + 1, delivered_at = now(),
    claim = NULL, lease_until = NULL
WHERE id = $1 AND claim = $2
"""

_RETRY = """
UPDATE webhook_events SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $3),
    claim = NULL, lease_until = NULL
WHERE id = $1 AND claim = $2
"""

_FAILED = """
UPDATE webhook_events SET state = 'failed', attempts = attempts + 1, claim = NULL, lease_until = NULL
WHERE id = $1 AND claim = $2
"""

_FOR_GENERATION = "SELECT * FROM webhook_events WHERE generation_id = $1 ORDER BY created_at, id"
_ATTEMPTS_OF = "SELECT * FROM webhook_attempts WHERE event_id = ANY($1::text[]) ORDER BY at, id"

_REQUEUE = """
WITH again AS (
    UPDATE webhook_events SET state = 'pending', next_attempt_at = now(), attempts = 0
    WHERE generation_id = $1 AND state = 'failed'
    RETURNING id
)
SELECT (SELECT count(*) FROM again) AS n, pg_notify($2, '')
"""

_DEPTH = """
SELECT count(*) AS depth, extract(epoch FROM now() - min(created_at)) AS oldest_s
FROM webhook_events WHERE state = 'pending'
"""

_NEXT_DUE = "SELECT min(greatest(next_attempt_at, lease_until)) FROM webhook_events WHERE state = 'pending'"


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event to deliver: ``id`` is its webhook-id."""

    id: str
    generation_id: uuid.UUID
    owner: str
    url: str
    event_type: str
    payload: str | None
    state: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> WebhookEvent:
        """From a ``webhook_events`` row."""
        return cls(
            row["id"],
            row["generation_id"],
            row["owner"],
            row["url"],
            row["event_type"],
            row["payload"],
            row["state"],
            int(row["attempts"]),
            row["next_attempt_at"],
            row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt."""

    event_id: str
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None


async def secret_for(conn: Executor, owner: str, candidate: str) -> str:
    """The owner's signing secret; ``candidate`` becomes it when there is none (first writer wins)."""
    await conn.execute(_SECRET_INSERT, owner, candidate)
    value = await conn.fetchval(_SECRET_READ, owner)
    assert value is not None
    return str(value)


async def claim(
    conn: Executor, token: str, *, lease_s: float, limit: int, leader_prefix: str | None
) -> list[WebhookEvent]:
    """Claim due events (including those a dead leader's term left claimed)."""
    rows = await conn.fetch(_CLAIM, token, lease_s, limit, leader_prefix)
    return [WebhookEvent.from_row(row) for row in rows]


async def set_payload(conn: Executor, event_id: str, token: str, payload: str) -> None:
    """Fix the body at the first attempt: every retry sends the same bytes."""
    await conn.execute(_SET_PAYLOAD, event_id, token, payload)


async def record_attempt(
    conn: Executor, event_id: str, status_code: int | None, latency_ms: float | None, error: str | None
) -> None:
    """Log one attempt."""
    await conn.execute(_ATTEMPT, event_id, status_code, latency_ms, error)


async def delivered(conn: Executor, event_id: str, token: str) -> None:
    """The receiver answered 2xx."""
    await conn.execute(_DELIVERED, event_id, token)


async def retry_in(conn: Executor, event_id: str, token: str, seconds: float) -> None:
    """Not delivered: try again in ``seconds``."""
    await conn.execute(_RETRY, event_id, token, seconds)


async def failed(conn: Executor, event_id: str, token: str) -> None:
    """The schedule is used up: given up."""
    await conn.execute(_FAILED, event_id, token)


async def for_generation(
    conn: Executor, generation_id: uuid.UUID
) -> tuple[list[WebhookEvent], list[Attempt]]:
    """A generation's events and all their attempts."""
    events = [WebhookEvent.from_row(row) for row in await conn.fetch(_FOR_GENERATION, generation_id)]
    rows = await conn.fetch(_ATTEMPTS_OF, [event.id for event in events])
    attempts = [Attempt(r["event_id"], r["at"], r["status_code"], r["latency_ms"], r["error"]) for r in rows]
    return events, attempts


async def requeue_failed(conn: Executor, generation_id: uuid.UUID) -> int:
    """Put a generation's failed events back in the queue, due now; how many."""
    return int(await conn.fetchval(_REQUEUE, generation_id, EVENTS_CHANNEL) or 0)


async def depth(conn: Executor) -> tuple[int, float]:
    """Pending events and the age of the oldest, in seconds."""
    row = await conn.fetchrow(_DEPTH)
    assert row is not None
    return int(row["depth"]), float(row["oldest_s"] or 0.0)


async def next_due(conn: Executor) -> datetime | None:
    """When the next pending event may be attempted."""
    value: datetime | None = await conn.fetchval(_NEXT_DUE)
    return value
