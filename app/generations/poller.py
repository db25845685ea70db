"""The storage-first poller (singleton): it asks KIE only what storage does not know yet.

Due generations are claimed by their indexed ``next_check_at``. Each check reads
the row first: if a callback already finished it, KIE is not asked at all. The
schedule follows KIE's guidance (every 2-3 s at first, 5-10 s up to two minutes,
15-30 s after); while callbacks flow, the first check is put off until after a
callback would normally have landed, so a generation whose callback arrives
costs no status query. Past its deadline a generation becomes ``timed_out``.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from datetime import UTC, datetime

from app.callbacks.applier import CallbackApplier
from app.db import generations as db
from app.db.database import Database, DatabaseUnavailable
from app.db.notifications import Notifications
from app.kie.client import KieClient
from app.kie.errors import KieAuthError, KieError
from app.leader import LeaderTerm
from app.logs import get_logger
from app.states import AT_KIE, State, Transition, outcome_transition
from app.supervision import BoundedWorkers, next_wake

log = get_logger(__name__)

_BATCH = 20
_CONCURRENCY = 8
_LEASE_S = 60.0  # a claimed check is ours for this long, then someone may take it again
_MAX_SLEEP_S = 1.0
_CALLBACKS_FLOWING_WINDOW_S = 600.0
_FIRST_CHECK_WITH_CALLBACKS_S = 20.0
_FIRST_CHECK_S = 2.5


def check_interval(age_s: float) -> float:
    """KIE's advice: 2-3 s for the first 30 s, 5-10 s up to 2 minutes, 15-30 s after that."""
    if age_s < 30:
        return 2.5
    if age_s < 120:
        return 7.5
    return 20.0


class Poller:
    """Reconciles what callbacks did not settle."""

    def __init__(
        self, *, database: Database, client: KieClient, applier: CallbackApplier, notifications: Notifications
    ) -> None:
        self._database = database
        self._client = client
        self._applier = applier
        self._notifications = notifications

    def first_check_in(self) -> float:
        """Seconds until a new task's first status check."""
        last = self._applier.last_verified_callback_at
        if last is not None and time.monotonic() - last < _CALLBACKS_FLOWING_WINDOW_S:
            return _FIRST_CHECK_WITH_CALLBACKS_S
        return _FIRST_CHECK_S

    async def run(self, term: LeaderTerm) -> None:
        """The singleton loop: woken by NOTIFY when a generation becomes due, else by its schedule."""
        wake = self._notifications.subscribe(db.DUE_CHANNEL)
        workers = BoundedWorkers("poller", _CONCURRENCY)
        try:
            while True:
                await self._expire_overdue(term)
                async with term.fenced() as conn:
                    due = await db.claim_due(conn, _BATCH, _LEASE_S)
                for generation_id in due:
                    await workers.spawn(
                        functools.partial(self.check, term, generation_id), str(generation_id)
                    )
                if len(due) < _BATCH:  # a full batch means more may be due: go on at once
                    await next_wake(wake, await self._sleep_for())
        finally:
            self._notifications.unsubscribe(db.DUE_CHANNEL, wake)
            await workers.close()

    async def _sleep_for(self) -> float:
        try:
            due_at = await db.next_due(self._database.require_pool())
        except DatabaseUnavailable:
            return _MAX_SLEEP_S
        if due_at is None:
            return _MAX_SLEEP_S
        return max(0.01, min(_MAX_SLEEP_S, (due_at - datetime.now(UTC)).total_seconds()))

    async def check(self, term: LeaderTerm, generation_id: uuid.UUID) -> None:
        """One storage-first check of one generation."""
        try:
            generation = await db.get_generation(self._database.require_pool(), generation_id)
        except DatabaseUnavailable:
            return  # the lease runs out and the check is claimed again once the database is back
        if generation is None or generation.terminal or generation.task_id is None:
            return  # a callback settled it: KIE is not asked
        started = generation.submitted_at or generation.created_at
        age = (datetime.now(UTC) - started).total_seconds()
        try:
            status = await self._client.get_status(generation.family, generation.task_id)
        except KieError as exc:
            retry_in = 30.0 if isinstance(exc, KieAuthError) else check_interval(age)
            log.warning("poller.status_failed", id=str(generation_id), error=str(exc), retry_in_s=retry_in)
            async with term.fenced() as conn:
                await db.schedule_check(conn, generation_id, retry_in, counted=True)
            return
        move = outcome_transition(status.as_dict())
        async with term.fenced() as conn:
            if move is not None and move.state in (State.SUCCEEDED, State.FAILED):
                moved = await db.apply_transition(conn, generation_id, move)
                await db.schedule_check(conn, generation_id, 0, counted=True)
                if moved:
                    log.info(
                        "generation.state_changed", id=str(generation_id), state=moved.state, by="poller"
                    )
            else:
                if move is not None and generation.state is State.SUBMITTED:
                    await db.apply_transition(
                        conn,
                        generation_id,
                        Transition(State.RUNNING, stage=status.stage, progress=status.progress),
                    )
                await db.schedule_check(conn, generation_id, check_interval(age), counted=True)

    async def _expire_overdue(self, term: LeaderTerm) -> None:
        async with term.fenced() as conn:
            overdue = await db.overdue(conn, 50)
        for late in overdue:
            if late.task_id is not None and late.state in AT_KIE:
                # One last question before giving up: a result that just finished must not be lost.
                with contextlib.suppress(KieError):
                    status = await self._client.get_status(late.family, late.task_id)
                    move = outcome_transition(status.as_dict())
                    if move is not None and move.state in (State.SUCCEEDED, State.FAILED):
                        async with term.fenced() as conn:
                            await db.apply_transition(conn, late.id, move)
                        continue
        async with term.fenced() as conn:
            for late in await db.overdue(conn, 50):
                if late.uncertain:
                    message = (
                        "KIE never confirmed the create request before the deadline; it was not retried, "
                        "so no second task (and no second charge) could be made"
                    )
                else:
                    message = "no result from KIE before the deadline"
                moved = await db.apply_transition(
                    conn, late.id, Transition(State.TIMED_OUT, error=message, error_code="timeout")
                )
                if moved:
                    log.warning("generation.timed_out", id=str(late.id), previous=moved.previous)
