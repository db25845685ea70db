"""SQL of the ``callback_events`` inbox.

A callback is stored before it is acknowledged and applied afterwards; each row
says what applying it did (``outcome``) and when (``applied_at``). Orphans, for
task ids we do not know yet, keep ``applied_at`` empty until their task id is
recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.db.connection import Conn, Executor
from app.db.jsonb import to_jsonb
from app.db.keys import task_lock_key


@dataclass(slots=True)
class InboxRow:
    """One callback, ready to be stored (treat as read-only)."""

    intake_id: str
    received_at: datetime
    path: str
    content_type: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: str
    body_size: int
    body_truncated: bool
    task_id: str | None
    strategy: str
    verification: str
    verification_detail: str | None
    gid: str | None
    parsed: dict[str, Any]
    spooled: bool


# The batch travels as one JSON array (one parameter to encode instead of sixteen arrays) to a
# function in migration 0004, which takes the task-id locks and inserts with a fresh snapshot.
_STORE_BATCH = "SELECT event_id, event_intake_id, settled_outcome FROM store_callback_batch($1, $2, $3)"

_SKIP_COMMIT_FLUSH = "SET LOCAL synchronous_commit TO off"

_LOCK_UNAPPLIED_MANY = """
SELECT id, task_id, verification, verification_detail, gid, parsed
FROM callback_events WHERE id = ANY($1::bigint[]) AND applied_at IS NULL
ORDER BY id
FOR UPDATE SKIP LOCKED
"""

_LOCK_UNAPPLIED_IDS = """
SELECT id FROM callback_events WHERE id = ANY($1::bigint[]) AND applied_at IS NULL
ORDER BY id
FOR UPDATE SKIP LOCKED
"""

_FINISH_MANY = """
UPDATE callback_events AS e
SET outcome = f.outcome, generation_id = f.generation_id, verification = f.verification,
    verification_detail = COALESCE(f.detail, e.verification_detail),
    applied_at = CASE WHEN f.applied THEN now() ELSE NULL END
FROM unnest($1::bigint[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::bool[])
    AS f(id, outcome, generation_id, verification, detail, applied)
WHERE e.id = f.id
"""

_ORPHANS_OF_TASK = """
SELECT id FROM callback_events
WHERE task_id = $1 AND generation_id IS NULL AND applied_at IS NULL
ORDER BY id
"""

_UNAPPLIED = """
SELECT id FROM callback_events
WHERE applied_at IS NULL AND outcome IS NULL AND received_at < now() - make_interval(secs => $1)
ORDER BY id LIMIT $2
"""

_ADOPTABLE_ORPHANS = """
SELECT e.id FROM callback_events e JOIN generations g ON g.task_id = e.task_id
WHERE e.generation_id IS NULL AND e.applied_at IS NULL AND e.task_id IS NOT NULL
ORDER BY e.id LIMIT $1
"""

_EXPIRE_ORPHANS = """
UPDATE callback_events SET outcome = 'orphan_expired', applied_at = now()
WHERE generation_id IS NULL AND applied_at IS NULL AND outcome = 'orphan'
  AND received_at < now() - make_interval(secs => $1)
"""

_PRUNE = """
DELETE FROM callback_events
WHERE id IN (
    SELECT id FROM callback_events
    WHERE applied_at IS NOT NULL AND received_at < now() - make_interval(secs => $1)
    LIMIT $2
)
"""

_COUNT_ORPHANS = """
SELECT count(*) FROM callback_events
WHERE generation_id IS NULL AND applied_at IS NULL AND outcome = 'orphan'
"""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A stored callback as the applier needs it: who sent it, how it was verified, what it says."""

    id: int
    task_id: str | None
    verification: str
    verification_detail: str | None
    gid: str | None
    parsed: dict[str, Any]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> StoredEvent:
        """Build from a locked ``callback_events`` row (``parsed`` decoded by the pool's codec)."""
        parsed = row["parsed"]
        return cls(
            row["id"],
            row["task_id"],
            row["verification"],
            row["verification_detail"],
            row["gid"],
            parsed if isinstance(parsed, dict) else {},
        )

    @classmethod
    def from_inbox_row(cls, event_id: int, row: InboxRow) -> StoredEvent:
        """A row this process just stored and still holds in memory."""
        return cls(event_id, row.task_id, row.verification, row.verification_detail, row.gid, row.parsed)


@dataclass(slots=True)
class Stored:
    """A row :func:`insert_batch` stored: its id, and the outcome it was settled with, if any."""

    event_id: int
    settled_outcome: str | None


async def insert_batch(
    conn: Executor, rows: list[InboxRow], *, trusted: Collection[str]
) -> dict[str, Stored]:
    """Store callbacks in one statement; return ``{intake_id: Stored}`` of the rows that were new.

    Rows that cannot move a generation are settled as they are stored (migration 0004): no
    task id -> ``no_task_id``; a verification not in ``trusted`` and a task id no generation
    owns -> ``orphan``. The others are left for the applier. A row whose intake id is already
    stored (a spool replay after a partial outage) is skipped.
    """
    payload = to_jsonb(rows)  # orjson serialises the dataclasses and datetimes itself
    # Only rows that may be settled as orphans need the task-id lock; trusted ones never are.
    keys = sorted(
        {task_lock_key(row.task_id) for row in rows if row.task_id and row.verification not in trusted}
    )
    records = await conn.fetch(_STORE_BATCH, payload, keys, sorted(trusted))
    return {
        record["event_intake_id"]: Stored(record["event_id"], record["settled_outcome"]) for record in records
    }


async def skip_commit_flush(conn: Conn) -> None:
    """Let this transaction commit without waiting for its WAL flush (only for redoable work)."""
    await conn.execute(_SKIP_COMMIT_FLUSH)


async def lock_unapplied_many(conn: Conn, event_ids: list[int]) -> list[StoredEvent]:
    """The events among ``event_ids`` nobody has applied or is applying, locked, oldest first."""
    return [StoredEvent.from_row(row) for row in await conn.fetch(_LOCK_UNAPPLIED_MANY, event_ids)]


async def lock_unapplied_ids(conn: Conn, event_ids: list[int]) -> set[int]:
    """:func:`lock_unapplied_many` returning only the ids (for callers that hold the rest)."""
    return {record["id"] for record in await conn.fetch(_LOCK_UNAPPLIED_IDS, event_ids)}


@dataclass(slots=True)
class Finished:
    """What applying one event did (treat as read-only)."""

    event_id: int
    outcome: str
    generation_id: uuid.UUID | None
    verification: str
    detail: str | None
    applied: bool


async def finish_many(conn: Conn, results: list[Finished]) -> None:
    """Record the outcome of many events in one statement; ``applied=False`` keeps an orphan waiting."""
    if not results:
        return
    await conn.execute(
        _FINISH_MANY,
        [r.event_id for r in results],
        [r.outcome for r in results],
        [r.generation_id for r in results],
        [r.verification for r in results],
        [r.detail for r in results],
        [r.applied for r in results],
    )


async def orphans_of_task(conn: Conn, task_id: str) -> list[int]:
    """Ids of the orphan events waiting for ``task_id``."""
    return [record["id"] for record in await conn.fetch(_ORPHANS_OF_TASK, task_id)]


async def unapplied(conn: Executor, older_than_s: float, limit: int) -> list[int]:
    """Events stored but never applied (the process died in between)."""
    return [record["id"] for record in await conn.fetch(_UNAPPLIED, older_than_s, limit)]


async def adoptable_orphans(conn: Executor, limit: int) -> list[int]:
    """Orphans whose task id has since been recorded on a generation."""
    return [record["id"] for record in await conn.fetch(_ADOPTABLE_ORPHANS, limit)]


async def expire_orphans(conn: Executor, older_than_s: float) -> int:
    """Give up on orphans nobody claimed for ``older_than_s``; return how many."""
    status = await conn.execute(_EXPIRE_ORPHANS, older_than_s)
    return int(status.split()[-1])


async def prune(conn: Executor, older_than_s: float, limit: int) -> int:
    """Delete up to ``limit`` applied events received more than ``older_than_s`` ago."""
    status = await conn.execute(_PRUNE, older_than_s, limit)
    return int(status.split()[-1])


async def count_orphans(conn: Executor) -> int:
    """How many orphans are waiting for their task id."""
    return int(await conn.fetchval(_COUNT_ORPHANS))
