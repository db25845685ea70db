"""Applying stored callbacks: each moves its generation forward through the one guarded state
move, exactly once, off the acknowledgement path.

An unverified callback never moves a generation by itself: it only makes the generation due for
an immediate status check, so a forged callback cannot fake a result or a failure. A callback for
a task id we do not know yet (KIE may call back before our create request returns) waits as an
orphan until :meth:`CallbackApplier.attach_task_id` records that id.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from datetime import datetime

from app.callbacks.tokens import URL_TOKEN, VERIFIED
from app.db import callback_events as inbox
from app.db import generations as db
from app.db.connection import Conn
from app.db.database import Database
from app.logs import get_logger
from app.metrics import callback_apply_counter
from app.redaction import describe_error
from app.states import TERMINAL, State, outcome_transition

log = get_logger(__name__)

_BATCH = 500
_BACKLOG = 20_000


class CallbackApplier:
    """Applies stored callback events; also where a newly known task id adopts its orphans."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: list[inbox.StoredEvent] = []
        self._wake = asyncio.Event()
        self.last_verified_callback_at: float | None = None  # monotonic; "callbacks are flowing"

    def enqueue(self, events: list[inbox.StoredEvent]) -> None:
        """Apply these just-stored events soon (the loop takes them in batches)."""
        if not events:
            return
        self._queue.extend(events)
        if len(self._queue) > _BACKLOG:
            # Far behind: forget the oldest; the maintenance sweep finds them in the table.
            del self._queue[: len(self._queue) - _BACKLOG]
        self._wake.set()

    async def run(self) -> None:
        """Apply what was stored, in batches (run supervised, for the life of the process)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:_BATCH], self._queue[_BATCH:]
                try:
                    await self._apply_held(batch)
                except Exception as exc:
                    # Stored but not applied: the maintenance sweep applies them shortly.
                    log.warning("kie_callback.apply_failed", events=len(batch), error=describe_error(exc))
                    break

    async def apply_events(self, event_ids: list[int]) -> dict[int, str]:
        """Apply stored events by id in one transaction; return each applied event's outcome."""
        async with self._database.require_pool().acquire() as conn, conn.transaction():
            # The events themselves are already durable: if a crash loses this commit, the
            # sweep applies them again, so this transaction need not wait for its WAL flush.
            await inbox.skip_commit_flush(conn)
            events = await inbox.lock_unapplied_many(conn, event_ids)
            return await self._apply_locked(conn, events)

    async def _apply_held(self, events: list[inbox.StoredEvent]) -> dict[int, str]:
        """:meth:`apply_events` for events this process just stored and still holds in memory."""
        async with self._database.require_pool().acquire() as conn, conn.transaction():
            await inbox.skip_commit_flush(conn)
            # Only the lock comes from the table: another applier may have taken some of them.
            free = await inbox.lock_unapplied_ids(conn, [event.id for event in events])
            return await self._apply_locked(conn, [event for event in events if event.id in free])

    async def attach_task_id(
        self, conn: Conn, generation_id: uuid.UUID, task_id: str, next_check_at: datetime | None
    ) -> bool:
        """Record KIE's task id on a queued generation and apply any orphan callbacks for it.

        Call inside the caller's transaction. The task-id lock serialises this with an
        applier that is deciding the same task's callback is an orphan, so none is missed.
        """
        await db.lock_tasks(conn, [task_id])
        if not await db.record_task_id(conn, generation_id, task_id, next_check_at):
            return False
        orphans = await inbox.lock_unapplied_many(conn, await inbox.orphans_of_task(conn, task_id))
        for event_id, outcome in (await self._apply_locked(conn, orphans)).items():
            log.info("kie_callback.orphan_applied", event_id=event_id, task_id=task_id, outcome=outcome)
        return True

    async def _apply_locked(self, conn: Conn, events: list[inbox.StoredEvent]) -> dict[int, str]:
        """Decide and apply locked events, oldest first, inside the caller's transaction."""
        if not events:
            return {}
        task_ids = sorted({event.task_id for event in events if event.task_id})
        # Serialises us with attach_task_id deciding about the same tasks: no orphan is missed.
        await db.lock_tasks(conn, task_ids)
        owners = await db.lock_by_task_ids(conn, task_ids)
        current: dict[str, State] = {task_id: owner.state for task_id, owner in owners.items()}
        results: list[inbox.Finished] = []
        due: list[uuid.UUID] = []
        for event in events:
            task_id, verification, detail = event.task_id, event.verification, None
            if not task_id:
                results.append(inbox.Finished(event.id, "no_task_id", None, verification, None, True))
                continue
            owner = owners.get(task_id)
            if owner is None and verification in VERIFIED:
                # Our create request is still in flight or in doubt: a verified callback naming our
                # generation tells us its task id (the task-id lock is already held).
                owner = await _adopt(conn, event.gid, task_id)
                if owner is not None:
                    owners[task_id] = owner
                    current[task_id] = owner.state
            if owner is None:
                # KIE may call back before our create request returned: keep it for attach_task_id.
                results.append(inbox.Finished(event.id, "orphan", None, verification, None, False))
                continue
            if verification == URL_TOKEN and event.gid != str(owner.id):
                verification, detail = "invalid", "token minted for another generation"
            if verification in VERIFIED:
                self.last_verified_callback_at = time.monotonic()
            move = outcome_transition(event.parsed)
            if current[task_id] in TERMINAL:
                outcome = f"ignored:{current[task_id]}"
            elif verification not in VERIFIED or move is None:
                # Not trusted, or it does not say: ask KIE, the final authority, right away.
                due.append(owner.id)
                outcome = "check_scheduled"
            else:
                moved = await db.apply_transition(conn, owner.id, move)
                if moved is not None:
                    current[task_id] = moved.state
                outcome = f"applied:{moved.state}" if moved else f"ignored:{current[task_id]}"
            results.append(inbox.Finished(event.id, outcome, owner.id, verification, detail, True))
        await db.touch_callbacks(conn, sorted({r.generation_id for r in results if r.generation_id}))
        await db.mark_due_many(conn, sorted(set(due)))
        await inbox.finish_many(conn, results)
        for outcome, count in collections.Counter(r.outcome.split(":", 1)[0] for r in results).items():
            callback_apply_counter(outcome).inc(count)
        return {result.event_id: result.outcome for result in results}


async def _adopt(conn: Conn, gid: str | None, task_id: str) -> db.TaskOwner | None:
    try:
        generation_id = uuid.UUID(gid or "")
    except ValueError:
        return None
    owner = await db.adopt_by_gid(conn, generation_id, task_id)
    if owner is not None:
        log.info("kie_callback.task_adopted", generation_id=str(generation_id), task_id=task_id)
    return owner
