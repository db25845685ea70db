"""The submitter (singleton): queued generations become KIE tasks, each exactly once.

A generation is claimed (``submitting_at``) in a fenced transaction before KIE is
asked, and its task id recorded in another fenced transaction afterwards, which
also applies any callback that raced ahead of the create response. A create whose
outcome is unknown (a timeout after the request went out, or a submitter killed
mid-request) is never retried: it waits for a verified callback naming our
generation, or for its deadline.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from app.backoff import Backoff
from app.callbacks.applier import CallbackApplier
from app.callbacks.tokens import callback_url
from app.db import generations as db
from app.db.connection import Conn
from app.db.database import Database
from app.db.leadership import StaleEpochError
from app.db.notifications import Notifications
from app.db.settings import SharedSecret
from app.generations.model import Generation
from app.kie.catalog import Catalog
from app.kie.client import KieClient
from app.kie.errors import CreateOutcome, KieAuthError, KieCreditsError, KieError, KieRefused, KieUncertain
from app.leader import LeaderTerm
from app.logs import get_logger
from app.states import State, Transition
from app.supervision import BoundedWorkers, next_wake

log = get_logger(__name__)

_CONCURRENCY = 8
_FALLBACK_POLL_S = 2.0
# Longer than a create can take with its retries: an older claim means its submitter died.
_STALE_CLAIM_S = 300.0
_STALE_SWEEP_S = 60.0
_RECORD_ATTEMPTS = 5


class Submitter:
    """Turns queued generations into KIE tasks while this instance leads."""

    def __init__(
        self,
        *,
        client: KieClient,
        catalog: Catalog,
        applier: CallbackApplier,
        secret: SharedSecret,
        notifications: Notifications,
        database: Database,
        public_base_url: str,
        first_check_in: Callable[[], float],
    ) -> None:
        self._client = client
        self._catalog = catalog
        self._applier = applier
        self._secret = secret
        self._notifications = notifications
        self._database = database
        self._public_base_url = public_base_url
        self._first_check_in = first_check_in

    async def run(self, term: LeaderTerm) -> None:
        """The singleton loop: woken by NOTIFY on new generations, with a polling fallback."""
        wake = self._notifications.subscribe(db.CREATED_CHANNEL)
        workers = BoundedWorkers("submitter", _CONCURRENCY)
        stale_checked = 0.0
        try:
            while True:
                if time.monotonic() - stale_checked > _STALE_SWEEP_S:
                    async with term.fenced() as conn:
                        stale = await db.mark_stale_submissions(conn, _STALE_CLAIM_S)
                    for generation_id in stale:
                        log.warning("submitter.claim_stale", id=str(generation_id))
                    stale_checked = time.monotonic()
                # Claim only what can start now: a claim that waits is a claim a crash strands.
                await workers.wait_for_free()
                async with term.fenced() as conn:
                    claimed = await db.claim_queued(conn, workers.free)
                for generation in claimed:
                    await workers.spawn(functools.partial(self.submit, term, generation), str(generation.id))
                if not claimed:
                    await next_wake(wake, _FALLBACK_POLL_S)
        finally:
            self._notifications.unsubscribe(db.CREATED_CHANNEL, wake)
            await workers.close()

    async def submit(self, term: LeaderTerm, generation: Generation) -> None:
        """Create the KIE task of one claimed generation and record what happened."""
        generation_id = generation.id
        model = self._catalog.get(generation.model)
        secret = self._secret.value
        if secret is None:
            async with term.fenced() as conn:
                await db.release_claim(conn, generation_id, 2.0, "waiting for the callback secret")
            return
        url = callback_url(self._public_base_url, str(generation_id), secret)
        sending = asyncio.Event()
        try:
            task_id = await self._client.create_task(
                model.family, model.kie_model, generation.input, url, sending
            )
        except asyncio.CancelledError:
            if not sending.is_set():
                # Stopped before anything left this process: give the generation back, even
                # while being cancelled (shielded), so the next leader submits it at once.
                await asyncio.shield(self._release_unsent(generation_id))
            raise
        except KieUncertain as exc:
            async with term.fenced() as conn:
                await db.mark_uncertain(conn, generation_id, f"KIE create outcome unknown: {exc}")
            log.warning("submitter.uncertain", id=str(generation_id), error=str(exc))
            return
        except KieCreditsError as exc:
            await self._fail(term, generation_id, "insufficient KIE credits", "402", exc)
            return
        except KieAuthError as exc:
            # Every generation would fail the same way: keep them queued until the key works.
            async with term.fenced() as conn:
                await db.release_claim(conn, generation_id, 30.0, f"KIE refused the API key: {exc.message}")
            log.error("submitter.kie_auth_failed", id=str(generation_id), error=exc.message)
            return
        except KieRefused as exc:
            if exc.meaning.outcome is CreateOutcome.RETRY_LATER:
                await self._retry_later(term, generation, exc)
            else:
                # A refusal created nothing, and sending it again cannot help: say why, now.
                await self._fail(term, generation_id, exc.user_message, str(exc.code), exc)
            return
        except KieError as exc:  # the connection was never made: nothing reached KIE
            await self._retry_later(term, generation, exc)
            return
        log.info("submitter.created", id=str(generation_id), task_id=task_id)
        first_check = datetime.now(UTC) + timedelta(seconds=self._first_check_in())
        # Shielded: even a step-down must not lose the id of a task KIE is already running for us.
        attached, current = await asyncio.shield(self._record(term, generation_id, task_id, first_check))
        if attached:
            log.info("submitter.submitted", id=str(generation_id), task_id=task_id, model=model.id)
        elif current is not None and current.task_id == task_id:
            log.info("submitter.callback_was_first", id=str(generation_id), task_id=task_id)
        else:
            log.error(
                "submitter.task_not_recorded",
                id=str(generation_id),
                task_id=task_id,
                state=current.state if current else None,
            )

    async def _record(
        self, term: LeaderTerm, generation_id: uuid.UUID, task_id: str, first_check: datetime
    ) -> tuple[bool, Generation | None]:
        """Record the task id of a task KIE made; retried, because losing it loses a paid result.

        The write is guarded by the row itself (still queued, no task id), so when our term has
        ended it is still right to record what we alone know, without the fence.
        """
        backoff = Backoff(base=0.2, cap=2.0)
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                try:
                    async with term.fenced() as conn:
                        return await self._attach(conn, generation_id, task_id, first_check)
                except StaleEpochError:
                    async with self._database.require_pool().acquire() as conn, conn.transaction():
                        return await self._attach(conn, generation_id, task_id, first_check)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError) as exc:
                delay = backoff.next_delay()
                log.error(
                    "submitter.record_failed",
                    id=str(generation_id),
                    task_id=task_id,
                    attempt=attempt,
                    error=str(exc)[:200],
                    retry_in_s=round(delay, 2),
                )
                if attempt == _RECORD_ATTEMPTS:
                    raise
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _attach(
        self, conn: Conn, generation_id: uuid.UUID, task_id: str, first_check: datetime
    ) -> tuple[bool, Generation | None]:
        attached = await self._applier.attach_task_id(conn, generation_id, task_id, first_check)
        return attached, None if attached else await db.get_generation(conn, generation_id)

    async def _release_unsent(self, generation_id: uuid.UUID) -> None:
        try:
            async with self._database.require_pool().acquire() as conn:
                await db.release_claim(conn, generation_id, 0.0, "the submitter stopped before sending it")
        except Exception as exc:
            log.warning("submitter.release_failed", id=str(generation_id), error=str(exc)[:200])

    async def _retry_later(self, term: LeaderTerm, generation: Generation, exc: KieError) -> None:
        retry_in = min(60.0, 2.0 * (generation.attempts or 1))
        async with term.fenced() as conn:
            await db.release_claim(conn, generation.id, retry_in, str(exc))
        log.warning("submitter.retry_later", id=str(generation.id), error=str(exc), retry_in_s=retry_in)

    async def _fail(
        self, term: LeaderTerm, generation_id: uuid.UUID, message: str, code: str, exc: Exception
    ) -> None:
        async with term.fenced() as conn:
            await db.apply_transition(
                conn, generation_id, Transition(State.FAILED, error=message, error_code=code)
            )
        log.warning("submitter.rejected", id=str(generation_id), error=str(exc))
