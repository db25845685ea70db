"""Callback maintenance, on every instance: load the shared secret, replay the spool, and run the
safety nets that make sure every stored callback is applied once and the inbox stays bounded.

Every pass (every few seconds, or at once when a callback was spooled) it makes sure the writer
stores straight to the database, replays the spool exactly once by intake id, and applies events
that were stored but never applied (a process that died in between). Once a minute it also
adopts orphans whose task id was recorded meanwhile, expires orphans nobody claimed for a day,
and prunes applied events older than 30 days.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg

from app.backoff import Backoff
from app.callbacks.applier import CallbackApplier
from app.callbacks.intake import CallbackIntake
from app.db import callback_events as inbox
from app.db.database import Database
from app.db.settings import SharedSecret
from app.logs import get_logger
from app.metrics import KIE_CALLBACK_ORPHANS
from app.redaction import describe_error

log = get_logger(__name__)

_PASS_INTERVAL_S = 5.0
_SLOW_SWEEP_S = 60.0
_UNAPPLIED_GRACE_S = 5.0
_SWEEP_BATCH = 500
_ORPHAN_TTL_S = 24 * 3600.0
_RETENTION_S = 30 * 24 * 3600.0
_PRUNE_BATCH = 5000


class CallbackMaintenance:
    """The background loop that keeps the intake storing directly and the inbox settled."""

    def __init__(
        self, database: Database, intake: CallbackIntake, applier: CallbackApplier, secret: SharedSecret
    ) -> None:
        self._database = database
        self._intake = intake
        self._applier = applier
        self._secret = secret
        self._slow_sweep_at = -_SLOW_SWEEP_S  # the first pass runs the slow sweep too

    async def run(self) -> None:
        """Pass after pass, for the life of the process (run supervised)."""
        backoff = Backoff(base=0.2, cap=2.0)
        while not await self._database.wait_ready(timeout=30):
            pass
        while True:
            try:
                await self.run_pass()
                backoff.reset()
                delay = _PASS_INTERVAL_S
            except Exception as exc:
                error = describe_error(exc)
                self._intake.use_spool(error)
                delay = backoff.next_delay()
                log.warning("callbacks.maintenance_failed", error=error, retry_in_s=round(delay, 2))
            self._intake.spooled_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._intake.spooled_wake.wait()

    async def run_pass(self) -> None:
        """One pass: secret, direct storing, spool replay, unapplied events; the slow sweep when due."""
        pool = self._database.require_pool()
        await self._secret.load(pool)
        self._intake.start_writer()
        spool = self._intake.spool
        if spool.has_pending():
            replayed = await spool.replay(self._intake.store_spooled)
            if replayed:
                log.info("callbacks.spool_replayed", records=replayed)
        # Only after the replay: callbacks that arrive meanwhile keep going to the spool, in order.
        self._intake.store_directly()
        if stale := await inbox.unapplied(pool, _UNAPPLIED_GRACE_S, _SWEEP_BATCH):
            await self._applier.apply_events(stale)
        if time.monotonic() - self._slow_sweep_at >= _SLOW_SWEEP_S:
            await self._slow_sweep(pool)
            self._slow_sweep_at = time.monotonic()

    async def _slow_sweep(self, pool: asyncpg.Pool) -> None:
        """Safety nets that scan more of the inbox, run once a minute rather than every pass."""
        # attach_task_id applies orphans as it records a task id; this catches any it could not.
        if adoptable := await inbox.adoptable_orphans(pool, _SWEEP_BATCH):
            await self._applier.apply_events(adoptable)
        expired = await inbox.expire_orphans(pool, _ORPHAN_TTL_S)
        if expired:
            log.info("callbacks.orphans_expired", count=expired)
        # The inbox is an audit trail, not an archive: applied events go after a while.
        pruned = await inbox.prune(pool, _RETENTION_S, _PRUNE_BATCH)
        if pruned:
            log.info("callbacks.pruned", count=pruned)
        KIE_CALLBACK_ORPHANS.set(await inbox.count_orphans(pool))
