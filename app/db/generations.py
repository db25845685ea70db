"""SQL of the ``generations`` table, and the one place a generation's state moves.

Every move is one UPDATE guarded by the current state (forward only: a terminal
state never changes, see ``app.states``), followed in the same transaction by a
NOTIFY on ``generation_events``, so waiters wake the moment it commits. State
names in the SQL come from ``app.states``; none is spelled here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.db.connection import Conn, Executor
from app.db.jsonb import to_jsonb
from app.db.keys import task_lock_key
from app.generations.model import Generation
from app.states import ALLOWED_FROM, AT_KIE, OPEN, TERMINAL, UNSUCCESSFUL, Moved, State, Transition, sql_list

EVENTS_CHANNEL = "generation_events"
DUE_CHANNEL = "generation_due"
CREATED_CHANNEL = "generation_created"

_TERMINAL = sql_list(TERMINAL)
_UNSUCCESSFUL = sql_list(UNSUCCESSFUL)
_OPEN = sql_list(OPEN)
_AT_KIE = sql_list(AT_KIE)
_QUEUED = sql_list((State.QUEUED,))
_SUBMITTED = sql_list((State.SUBMITTED,))

# S608: every interpolated value below is one of our own state constants (app.states.sql_list).
_MOVE = f"""
WITH current AS (SELECT id, state FROM generations WHERE id = $1 FOR UPDATE)
UPDATE generations AS g SET
    state = $2,
    result_urls = COALESCE($3::jsonb, g.result_urls),
    error = CASE WHEN $2 IN ({_UNSUCCESSFUL}) THEN $4 ELSE g.error END,
    error_code = CASE WHEN $2 IN ({_UNSUCCESSFUL}) THEN $5 ELSE g.error_code END,
    stage = COALESCE($6, g.stage),
    progress = CASE WHEN $2 = '{State.SUCCEEDED}' THEN 1.0 ELSE COALESCE($7, g.progress) END,
    result_object = COALESCE($8::jsonb, g.result_object),
    cover_url = COALESCE($10, g.cover_url),
    finished_at = CASE WHEN $2 IN ({_TERMINAL}) THEN now() END,
    next_check_at = CASE WHEN $2 IN ({_TERMINAL}) THEN NULL ELSE g.next_check_at END,
    -- A success with result files waits for the mirror worker; any other end has nothing to copy.
    mirror_state = CASE
        WHEN $2 = '{State.SUCCEEDED}'
             AND jsonb_array_length(COALESCE($3::jsonb, g.result_urls)) > 0 THEN 'pending'
        WHEN $2 IN ({_TERMINAL}) THEN 'done'
        ELSE g.mirror_state END,
    mirror_next_at = CASE WHEN $2 = '{State.SUCCEEDED}' THEN now() ELSE g.mirror_next_at END,
    updated_at = generation_stamp(g.updated_at)
FROM current
WHERE g.id = current.id AND current.state = ANY($9::text[])
RETURNING current.state AS previous, g.state, g.stage, g.progress
"""  # noqa: S608

_NOTIFY = "SELECT pg_notify($1, $2)"

_RECORD_TASK_ID = f"""
UPDATE generations
SET task_id = $2, state = {_SUBMITTED}, next_check_at = $3, submitted_at = now(), submitting_at = NULL,
    submit_uncertain_at = NULL, error = NULL, updated_at = generation_stamp(updated_at)
WHERE id = $1 AND state = {_QUEUED}
RETURNING id
"""  # noqa: S608

_GET = "SELECT * FROM generations WHERE id = $1"
_GET_MANY = "SELECT * FROM generations WHERE id = ANY($1::uuid[])"

# One statement, keys in a fixed global order, so two batches never deadlock on each other.
_LOCK_TASKS = "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys"
_BY_TASK_IDS_FOR_UPDATE = (
    "SELECT id, state, task_id FROM generations WHERE task_id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
_TOUCH_CALLBACKS = "UPDATE generations SET last_callback_at = now() WHERE id = ANY($1::uuid[])"
_MARK_DUE_MANY = f"""
WITH due AS (
    UPDATE generations SET next_check_at = now(), updated_at = generation_stamp(updated_at)
    WHERE id = ANY($1::uuid[]) AND state IN ({_AT_KIE})
    RETURNING id
)
SELECT id, pg_notify($2, id::text) FROM due
"""  # noqa: S608

# Not updated_at: nothing about the generation changed, only when it is looked at next.
_CHECK_EARLY = f"""
WITH due AS (
    UPDATE generations SET next_check_at = now(), early_check_at = now()
    WHERE id = $1 AND state IN ({_AT_KIE})
      AND next_check_at > now() + make_interval(secs => $2)
      AND (early_check_at IS NULL OR early_check_at < now() - make_interval(secs => $3))
    RETURNING id
)
SELECT id, pg_notify($4, id::text) FROM due
"""  # noqa: S608

_INSERT_IDEMPOTENT = """
INSERT INTO generations (id, owner, source, model, family, input, idempotency_key, deadline_at, webhook_url)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, now() + make_interval(secs => $8), $9)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING *
"""
_BY_IDEMPOTENCY_KEY = "SELECT * FROM generations WHERE owner = $1 AND idempotency_key = $2"

_LIST = """
SELECT * FROM generations
WHERE owner = $1
  AND ($2::text IS NULL OR state = $2)
  AND ($3::text IS NULL OR model = $3)
  AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $6
"""

_CHANGED_SINCE = """
SELECT * FROM generations WHERE owner = $1 AND updated_at > $2 ORDER BY updated_at, id LIMIT $3
"""

_CLAIM_QUEUED = f"""
UPDATE generations SET submitting_at = now(), attempts = attempts + 1,
    updated_at = generation_stamp(updated_at)
WHERE id IN (
    SELECT id FROM generations
    WHERE state = {_QUEUED} AND submitting_at IS NULL AND submit_uncertain_at IS NULL
      AND (submit_after IS NULL OR submit_after <= now())
    ORDER BY created_at
    FOR UPDATE SKIP LOCKED
    LIMIT $1
)
RETURNING *
"""  # noqa: S608

_RELEASE_CLAIM = f"""
UPDATE generations SET submitting_at = NULL, submit_after = now() + make_interval(secs => $2),
    error = $3, updated_at = generation_stamp(updated_at)
WHERE id = $1 AND state = {_QUEUED}
"""  # noqa: S608

_MARK_UNCERTAIN = f"""
UPDATE generations SET submit_uncertain_at = now(), error = $2, updated_at = generation_stamp(updated_at)
WHERE id = $1 AND state = {_QUEUED} AND task_id IS NULL
"""  # noqa: S608

_STALE_SUBMISSIONS = f"""
UPDATE generations SET submit_uncertain_at = now(), updated_at = generation_stamp(updated_at),
    error = 'the submitter stopped while creating the KIE task; waiting for KIE to confirm it'
WHERE state = {_QUEUED} AND task_id IS NULL AND submit_uncertain_at IS NULL
  AND submitting_at < now() - make_interval(secs => $1)
RETURNING id
"""  # noqa: S608

_ADOPT_BY_GID = f"""
UPDATE generations SET task_id = $2, state = {_SUBMITTED}, submitted_at = now(), submit_uncertain_at = NULL,
    submitting_at = NULL, error = NULL, updated_at = generation_stamp(updated_at),
    next_check_at = now() + interval '5 seconds'
WHERE id = $1 AND state = {_QUEUED} AND task_id IS NULL
  AND (submitting_at IS NOT NULL OR submit_uncertain_at IS NOT NULL)
RETURNING id, state, task_id
"""  # noqa: S608

_CLAIM_DUE = f"""
UPDATE generations SET next_check_at = now() + make_interval(secs => $2)
WHERE id IN (
    SELECT id FROM generations
    WHERE state IN ({_AT_KIE}) AND task_id IS NOT NULL AND next_check_at <= now()
    ORDER BY next_check_at
    FOR UPDATE SKIP LOCKED
    LIMIT $1
)
RETURNING id
"""  # noqa: S608

_SCHEDULE_CHECK = f"""
UPDATE generations
SET next_check_at = CASE WHEN state IN ({_AT_KIE}) THEN now() + make_interval(secs => $2) END,
    status_checks = status_checks + $3
WHERE id = $1
"""  # noqa: S608

_NEXT_DUE = f"""
SELECT min(next_check_at) FROM generations
WHERE state IN ({_AT_KIE}) AND task_id IS NOT NULL AND next_check_at IS NOT NULL
"""  # noqa: S608

# Most overdue first, then in id order: rows are locked one by one in that order, the same
# order the callback applier uses, so the two never deadlock.
_OVERDUE = f"""
SELECT * FROM (
    SELECT id, state, task_id, family, submit_uncertain_at IS NOT NULL AS uncertain FROM generations
    WHERE state IN ({_OPEN}) AND deadline_at < now()
    ORDER BY deadline_at LIMIT $1
) AS overdue ORDER BY id
"""  # noqa: S608


@dataclass(frozen=True, slots=True)
class TaskOwner:
    """The generation that owns a KIE task id, as the callback applier needs it."""

    id: uuid.UUID
    state: State
    task_id: str


@dataclass(frozen=True, slots=True)
class Overdue:
    """An open generation past its deadline."""

    id: uuid.UUID
    state: State
    task_id: str | None
    family: str
    uncertain: bool


async def get_generation(conn: Executor, generation_id: uuid.UUID) -> Generation | None:
    """The generation, or None."""
    row = await conn.fetchrow(_GET, generation_id)
    return Generation.from_row(row) if row is not None else None


async def get_generations(conn: Executor, generation_ids: list[uuid.UUID]) -> list[Generation]:
    """The generations that exist among ``generation_ids`` (one query)."""
    return [Generation.from_row(row) for row in await conn.fetch(_GET_MANY, generation_ids)]


async def apply_transition(conn: Conn, generation_id: uuid.UUID, move: Transition) -> Moved | None:
    """Move a generation forward, guarded by its current state; NOTIFY on success.

    Returns None (and changes nothing) when the move is not allowed from the current
    state: a late or duplicate callback, or anything after a terminal state.
    Must run inside a transaction so the NOTIFY goes out with the commit.
    """
    row = await conn.fetchrow(
        _MOVE,
        generation_id,
        move.state.value,
        to_jsonb(move.result_urls) if move.result_urls is not None else None,
        move.error,
        move.error_code,
        move.stage,
        move.progress,
        to_jsonb(move.result_object) if move.result_object is not None else None,
        [state.value for state in ALLOWED_FROM[move.state]],
        move.cover_url,
    )
    if row is None:
        return None
    await notify_event(conn, generation_id, row["state"], previous=row["previous"], stage=row["stage"])
    return Moved(generation_id, State(row["previous"]), State(row["state"]))


async def notify_event(
    conn: Conn, generation_id: uuid.UUID, state: str, *, previous: str | None, stage: str | None
) -> None:
    """Tell every listener that a generation changed (delivered when the transaction commits)."""
    payload = {"id": str(generation_id), "state": state, "previous": previous, "stage": stage}
    await conn.execute(_NOTIFY, EVENTS_CHANNEL, orjson.dumps(payload).decode())


async def record_task_id(
    conn: Conn, generation_id: uuid.UUID, task_id: str, next_check_at: datetime | None
) -> bool:
    """Record KIE's task id on a queued generation (now ``submitted``); False if it was not queued."""
    row = await conn.fetchrow(_RECORD_TASK_ID, generation_id, task_id, next_check_at)
    if row is None:
        return False
    await notify_event(conn, generation_id, State.SUBMITTED, previous=State.QUEUED, stage=None)
    return True


async def lock_tasks(conn: Conn, task_ids: list[str]) -> None:
    """Lock KIE task ids for this transaction, exclusively, in a deadlock-free order.

    Taken by whatever records a task id or decides about a task's callbacks; storing an
    unverified callback takes the same key shared (migration 0004).
    """
    if task_ids:
        await conn.execute(_LOCK_TASKS, sorted({task_lock_key(task_id) for task_id in task_ids}))


async def lock_by_task_ids(conn: Conn, task_ids: list[str]) -> dict[str, TaskOwner]:
    """The generations owning any of ``task_ids``, by task id, locked for this transaction."""
    if not task_ids:
        return {}
    rows = await conn.fetch(_BY_TASK_IDS_FOR_UPDATE, task_ids)
    return {row["task_id"]: TaskOwner(row["id"], State(row["state"]), row["task_id"]) for row in rows}


async def touch_callbacks(conn: Conn, generation_ids: list[uuid.UUID]) -> None:
    """Remember that callbacks arrived for these generations."""
    if generation_ids:
        await conn.execute(_TOUCH_CALLBACKS, generation_ids)


async def mark_due_many(conn: Conn, generation_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Make generations at KIE due for a status check now; returns those that were (and woke the poller)."""
    if not generation_ids:
        return []
    return [row["id"] for row in await conn.fetch(_MARK_DUE_MANY, generation_ids, DUE_CHANNEL)]


async def check_early(conn: Executor, generation_id: uuid.UUID, *, ahead_s: float, every_s: float) -> bool:
    """Make a generation at KIE due now when its next check is more than ``ahead_s`` away, at most
    once every ``every_s``; True when it did (and woke the poller)."""
    return await conn.fetchrow(_CHECK_EARLY, generation_id, ahead_s, every_s, DUE_CHANNEL) is not None


async def insert_idempotent(
    conn: Conn,
    *,
    generation_id: uuid.UUID,
    owner: str,
    source: str,
    model: str,
    family: str,
    input: dict[str, Any],
    idempotency_key: str | None,
    timeout_s: float,
    webhook_url: str | None = None,
) -> tuple[Generation, bool]:
    """Insert a queued generation; with an idempotency key already used, return that one instead.

    Returns ``(generation, created)``. A new row is announced on ``generation_created``.
    """
    row = await conn.fetchrow(
        _INSERT_IDEMPOTENT,
        generation_id,
        owner,
        source,
        model,
        family,
        to_jsonb(input),
        idempotency_key,
        timeout_s,
        webhook_url,
    )
    if row is not None:
        await conn.execute(_NOTIFY, CREATED_CHANNEL, str(generation_id))
        return Generation.from_row(row), True
    existing = await conn.fetchrow(_BY_IDEMPOTENCY_KEY, owner, idempotency_key)
    assert existing is not None
    return Generation.from_row(existing), False


async def list_generations(
    conn: Executor,
    *,
    owner: str,
    state: State | None,
    model: str | None,
    before: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Generation]:
    """The owner's generations, newest first, after the ``before`` cursor."""
    created, last_id = before if before else (None, None)
    rows = await conn.fetch(_LIST, owner, state.value if state else None, model, created, last_id, limit)
    return [Generation.from_row(row) for row in rows]


async def changed_since(conn: Executor, owner: str, since: datetime, limit: int) -> list[Generation]:
    """The owner's generations changed after ``since``, oldest change first."""
    return [Generation.from_row(row) for row in await conn.fetch(_CHANGED_SINCE, owner, since, limit)]


async def claim_queued(conn: Conn, limit: int) -> list[Generation]:
    """Mark up to ``limit`` queued generations as being submitted (the caller holds the fence)."""
    return [Generation.from_row(row) for row in await conn.fetch(_CLAIM_QUEUED, limit)]


async def release_claim(conn: Conn, generation_id: uuid.UUID, retry_in_s: float, why: str) -> None:
    """Give a claimed generation back to the queue, to be tried again after ``retry_in_s``."""
    await conn.execute(_RELEASE_CLAIM, generation_id, retry_in_s, why)


async def mark_uncertain(conn: Conn, generation_id: uuid.UUID, why: str) -> None:
    """The create request may have reached KIE: never submit again; a callback or the deadline decides."""
    await conn.execute(_MARK_UNCERTAIN, generation_id, why)


async def mark_stale_submissions(conn: Conn, older_than_s: float) -> list[uuid.UUID]:
    """Claims whose submitter died mid-request become uncertain (never blindly re-created)."""
    return [row["id"] for row in await conn.fetch(_STALE_SUBMISSIONS, older_than_s)]


async def adopt_by_gid(conn: Conn, generation_id: uuid.UUID, task_id: str) -> TaskOwner | None:
    """Record a task id learned from a verified callback for a generation whose create is in doubt."""
    row = await conn.fetchrow(_ADOPT_BY_GID, generation_id, task_id)
    if row is None:
        return None
    await notify_event(conn, generation_id, State.SUBMITTED, previous=State.QUEUED, stage=None)
    return TaskOwner(row["id"], State(row["state"]), row["task_id"])


async def claim_due(conn: Conn, limit: int, lease_s: float) -> list[uuid.UUID]:
    """Ids of open generations due for a status check, leased for ``lease_s`` so no one else checks them."""
    return [row["id"] for row in await conn.fetch(_CLAIM_DUE, limit, lease_s)]


async def schedule_check(conn: Executor, generation_id: uuid.UUID, in_s: float, *, counted: bool) -> None:
    """Set the next status check; ``counted`` adds one to the generation's status-query count."""
    await conn.execute(_SCHEDULE_CHECK, generation_id, in_s, 1 if counted else 0)


async def next_due(conn: Executor) -> datetime | None:
    """When the earliest open generation is due for a check."""
    value: datetime | None = await conn.fetchval(_NEXT_DUE)
    return value


async def overdue(conn: Conn, limit: int) -> list[Overdue]:
    """Open generations past their deadline."""
    return [
        Overdue(row["id"], State(row["state"]), row["task_id"], row["family"], row["uncertain"])
        for row in await conn.fetch(_OVERDUE, limit)
    ]
