"""Generations as users see them: create, read, list, wait for the end, cancel.

Every channel (the HTTP API, and the Telegram bot to come) goes through this service; it knows
nothing of HTTP or Telegram and returns :class:`Generation` values. ``wait_for_terminal`` is
storage-first and bounded: it reads the row, and only then waits for a ``generation_events``
notification (or a one-second fallback tick) before reading again; it always returns by its
timeout.
"""

from __future__ import annotations

import asyncio
import builtins
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.db import generations as db
from app.db.connection import Conn
from app.db.database import Database
from app.db.notifications import Notifications
from app.generations.model import Generation
from app.kie.catalog import Catalog, Model
from app.logs import get_logger
from app.states import State, Transition

log = get_logger(__name__)

_FALLBACK_TICK_S = 1.0
# Reconcile on read: an open generation whose next check is further away than this is checked now,
# at most once per _EARLY_EVERY_S, so a user who looks at a stale one gets the truth quickly.
_EARLY_AHEAD_S = 3.0
_EARLY_EVERY_S = 10.0
_CANCELED_BY_USER = "canceled by the user"


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request."""


@dataclass(frozen=True)
class Created:
    """The outcome of :meth:`GenerationService.create_generation`."""

    generation: Generation
    created: bool  # False: an earlier request with the same idempotency key


class GenerationService:
    """Creates and reads generations. Raises ``DatabaseUnavailable`` while the database is away."""

    def __init__(
        self,
        database: Database,
        catalog: Catalog,
        notifications: Notifications,
        *,
        default_timeout_s: float = 900.0,
    ) -> None:
        self._database = database
        self.catalog = catalog
        self._notifications = notifications
        self._default_timeout_s = default_timeout_s

    def timeout_for(self, model: Model) -> float:
        """GENERATION_TIMEOUT_S, or the catalog's longer allowance for a video model."""
        if model.output == "video":
            return max(self._default_timeout_s, float(model.timeout_s))
        return self._default_timeout_s

    async def create_generation(
        self,
        *,
        owner: str,
        source: str,
        model_id: str,
        input: Any,
        idempotency_key: str | None = None,
        also: Callable[[Conn, Generation], Awaitable[None]] | None = None,
        webhook_url: str | None = None,
    ) -> Created:
        """Validate against the catalog, insert ``queued`` and wake the submitter.

        ``also`` runs in the same transaction when the generation is new (a channel's own row,
        such as the Telegram delivery, is then written with it or not at all).
        Raises UnknownModelError / InvalidInputError (bad request), IdempotencyConflict.
        """
        model = self.catalog.get(model_id)
        clean = self.catalog.validate(model_id, input)
        async with self._database.require_pool().acquire() as conn, conn.transaction():
            generation, created = await db.insert_idempotent(
                conn,
                generation_id=uuid.uuid4(),
                owner=owner,
                source=source,
                model=model.id,
                family=model.family,
                input=clean,
                idempotency_key=idempotency_key,
                timeout_s=self.timeout_for(model),
                webhook_url=webhook_url,
            )
            if created and also is not None:
                await also(conn, generation)
        if not created and (generation.model != model.id or generation.input != clean):
            raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
        if created:
            log.info("generation.created", id=str(generation.id), model=model.id, owner=owner, source=source)
        return Created(generation, created)

    async def get(self, generation_id: uuid.UUID, owner: str | None = None) -> Generation | None:
        """The generation, or None (also when it belongs to another owner)."""
        generation = await db.get_generation(self._database.require_pool(), generation_id)
        if generation is None or (owner is not None and generation.owner != owner):
            return None
        return generation

    async def reconcile(self, generation: Generation) -> bool:
        """A reader looks at an open generation: make it due for a status check now (bounded)."""
        if generation.terminal:
            return False
        return await db.check_early(
            self._database.require_pool(), generation.id, ahead_s=_EARLY_AHEAD_S, every_s=_EARLY_EVERY_S
        )

    async def get_many(self, generation_ids: builtins.list[uuid.UUID]) -> builtins.list[Generation]:
        """The generations among ``generation_ids`` (one query; any owner)."""
        return await db.get_generations(self._database.require_pool(), generation_ids)

    async def list(
        self,
        *,
        owner: str,
        state: State | None = None,
        model: str | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 20,
    ) -> list[Generation]:
        """The owner's generations, newest first."""
        return await db.list_generations(
            self._database.require_pool(), owner=owner, state=state, model=model, before=before, limit=limit
        )

    async def changed_since(self, owner: str, since: datetime, limit: int = 100) -> builtins.list[Generation]:
        """The owner's generations changed after ``since`` (what a reconnecting follower missed)."""
        return await db.changed_since(self._database.require_pool(), owner, since, limit)

    async def wait_for_terminal(self, generation_id: uuid.UUID, timeout: float) -> Generation | None:
        """The generation once terminal, or as it is when ``timeout`` runs out; never hangs."""
        return await self._wait(generation_id, timeout, lambda generation: generation.terminal)

    async def _wait(
        self, generation_id: uuid.UUID, timeout: float, done: Callable[[Generation], bool]
    ) -> Generation | None:
        deadline = time.monotonic() + max(0.0, timeout)
        events = self._notifications.subscribe(db.EVENTS_CHANNEL)
        key = str(generation_id)
        seen: Generation | None = None
        try:
            while True:
                try:
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        seen = await db.get_generation(self._database.require_pool(), generation_id)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    pass  # storage unreachable for now (DatabaseUnavailable is an OSError): keep what we saw
                else:
                    if seen is None or done(seen):
                        return seen
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return seen
                await _next_event_for(events, key, min(remaining, _FALLBACK_TICK_S))
        finally:
            self._notifications.unsubscribe(db.EVENTS_CHANNEL, events)

    async def cancel(self, generation_id: uuid.UUID, owner: str | None = None) -> Generation | None:
        """Stop tracking an open generation (KIE has no cancel); later callbacks are recorded only."""
        pool = self._database.require_pool()
        async with pool.acquire() as conn, conn.transaction():
            generation = await db.get_generation(conn, generation_id)
            if generation is None or (owner is not None and generation.owner != owner):
                return None
            await db.apply_transition(
                conn, generation_id, Transition(State.CANCELED, error=_CANCELED_BY_USER)
            )
        return await db.get_generation(pool, generation_id)


async def _next_event_for(events: asyncio.Queue[str], key: str, timeout: float) -> None:
    """Wait until a notification mentions ``key`` (or an empty wake-up-all), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            async with asyncio.timeout(remaining):
                payload = await events.get()
        except TimeoutError:
            return
        if not payload or key in payload:
            return
