"""SQL of the ``generations`` table, and the one place a generation's state moves.

Every move is one UPDATE guarded by the current state (forward only: a terminal
state never changes), followed in the same transaction by a NOTIFY on
``generation_events``, so waiters wake the moment it commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from app.db.jsonb import to_jsonb
from app.db.keys import advisory_key

EVENTS_CHANNEL = "generation_events"
DUE_CHANNEL = "generation_due"

TERMINAL_STATES = frozenset({"succeeded", "failed", "timed_out", "canceled"})
OPEN_STATES = ("queued", "submitted", "running")
# Which current states each target state may be reached from. Running may repeat (progress).
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "submitted": ("queued",),
    "running": ("queued", "submitted", "running"),
    **{state: OPEN_STATES for state in TERMINAL_STATES},
}


@dataclass(frozen=True)
class Transition:
    """A requested move of a generation to ``state``, with what it brings."""

    state: str
    result_urls: list[str] | None = None
    error: str | None = None
    error_code: str | None = None
    stage: str | None = None
    progress: float | None = None
    result_object: Any = None


@dataclass(frozen=True)
class Moved:
    """A transition that took effect."""

    generation_id: uuid.UUID
    previous: str
    state: str


_INSERT = """
INSERT INTO generations (id, owner, source, model, family, input, idempotency_key, deadline_at)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)
RETURNING *
"""

_MOVE = """
WITH current AS (SELECT id, state FROM generations WHERE id = $1 FOR UPDATE)
UPDATE generations AS g SET
    state = $2,
    result_urls = COALESCE($3::jsonb, g.result_urls),
    error = CASE WHEN $2 IN ('failed', 'timed_out', 'canceled') THEN $4 ELSE g.error END,
    error_code = CASE WHEN $2 IN ('failed', 'timed_out', 'canceled') THEN $5 ELSE g.error_code END,
    stage = COALESCE($6, g.stage),
    progress = CASE WHEN $2 = 'succeeded' THEN 1.0 ELSE COALESCE($7, g.progress) END,
    result_object = COALESCE($8::jsonb, g.result_object),
    finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'timed_out', 'canceled') THEN now() END,
    next_check_at = CASE WHEN $2 IN ('succeeded', 'failed', 'timed_out', 'canceled')
                         THEN NULL ELSE g.next_check_at END,
    updated_at = now()
FROM current
WHERE g.id = current.id AND current.state = ANY($9::text[])
RETURNING current.state AS previous, g.state, g.stage, g.progress
"""

_NOTIFY = "SELECT pg_notify($1, $2)"

_RECORD_TASK_ID = """
UPDATE generations
SET task_id = $2, state = 'submitted', next_check_at = $3, updated_at = now()
WHERE id = $1 AND state = 'queued'
RETURNING id
"""

_GET = "SELECT * FROM generations WHERE id = $1"

_LOCK_TASK = "SELECT pg_advisory_xact_lock($1)"
# One statement, keys in a fixed global order, so two batches never deadlock on each other.
_LOCK_TASKS = "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys"
_BY_TASK_IDS_FOR_UPDATE = (
    "SELECT id, state, task_id FROM generations WHERE task_id = ANY($1::text[]) FOR UPDATE"
)
_TOUCH_CALLBACKS = "UPDATE generations SET last_callback_at = now() WHERE id = ANY($1::uuid[])"
_MARK_DUE_MANY = """
WITH due AS (
    UPDATE generations SET next_check_at = now(), updated_at = now()
    WHERE id = ANY($1::uuid[]) AND state IN ('submitted', 'running')
    RETURNING id
)
SELECT id, pg_notify($2, id::text) FROM due
"""


async def insert_generation(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    generation_id: uuid.UUID,
    owner: str,
    source: str,
    model: str,
    family: str,
    input: dict[str, Any],
    idempotency_key: str | None = None,
    deadline_at: datetime | None = None,
) -> asyncpg.Record:
    """Insert a new ``queued`` generation and return its row."""
    row = await conn.fetchrow(
        _INSERT, generation_id, owner, source, model, family, to_jsonb(input), idempotency_key, deadline_at
    )
    assert row is not None
    return row


async def get_generation(
    conn: asyncpg.Connection | asyncpg.Pool, generation_id: uuid.UUID
) -> asyncpg.Record | None:
    """The generation's row, or None."""
    return await conn.fetchrow(_GET, generation_id)


async def apply_transition(
    conn: asyncpg.Connection, generation_id: uuid.UUID, move: Transition
) -> Moved | None:
    """Move a generation forward, guarded by its current state; NOTIFY on success.

    Returns None (and changes nothing) when the move is not allowed from the current
    state: a late or duplicate callback, or anything after a terminal state.
    Must run inside a transaction so the NOTIFY goes out with the commit.
    """
    allowed = _ALLOWED_FROM.get(move.state)
    if allowed is None:
        raise ValueError(f"unknown target state {move.state!r}")
    row = await conn.fetchrow(
        _MOVE,
        generation_id,
        move.state,
        to_jsonb(move.result_urls) if move.result_urls is not None else None,
        move.error,
        move.error_code,
        move.stage,
        move.progress,
        to_jsonb(move.result_object) if move.result_object is not None else None,
        list(allowed),
    )
    if row is None:
        return None
    await notify_event(conn, generation_id, row["state"], previous=row["previous"], stage=row["stage"])
    return Moved(generation_id, row["previous"], row["state"])


async def notify_event(
    conn: asyncpg.Connection, generation_id: uuid.UUID, state: str, *, previous: str | None, stage: str | None
) -> None:
    """Tell every listener that a generation changed (delivered when the transaction commits)."""
    payload = {"id": str(generation_id), "state": state, "previous": previous, "stage": stage}
    await conn.execute(_NOTIFY, EVENTS_CHANNEL, orjson.dumps(payload).decode())


async def record_task_id(
    conn: asyncpg.Connection, generation_id: uuid.UUID, task_id: str, next_check_at: datetime | None
) -> bool:
    """Record KIE's task id on a queued generation (now ``submitted``); False if it was not queued."""
    row = await conn.fetchrow(_RECORD_TASK_ID, generation_id, task_id, next_check_at)
    if row is None:
        return False
    await notify_event(conn, generation_id, "submitted", previous="queued", stage=None)
    return True


async def lock_tasks(conn: asyncpg.Connection, task_ids: list[str]) -> None:
    """:func:`lock_task` for many task ids at once, in a deadlock-free order."""
    if task_ids:
        await conn.execute(_LOCK_TASKS, sorted({advisory_key(f"kie_task:{task_id}") for task_id in task_ids}))


async def lock_by_task_ids(conn: asyncpg.Connection, task_ids: list[str]) -> list[asyncpg.Record]:
    """The generations owning any of ``task_ids`` (id, state, task_id), locked for this transaction."""
    if not task_ids:
        return []
    return list(await conn.fetch(_BY_TASK_IDS_FOR_UPDATE, task_ids))


async def touch_callbacks(conn: asyncpg.Connection, generation_ids: list[uuid.UUID]) -> None:
    """Remember that callbacks arrived for these generations."""
    if generation_ids:
        await conn.execute(_TOUCH_CALLBACKS, generation_ids)


async def mark_due_many(conn: asyncpg.Connection, generation_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """:func:`mark_due_now` for many generations; returns those that were open and are now due."""
    if not generation_ids:
        return []
    return [row["id"] for row in await conn.fetch(_MARK_DUE_MANY, generation_ids, DUE_CHANNEL)]
