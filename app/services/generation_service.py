"""Generations as users see them: create, read, list, wait for the end, cancel.

``wait_for_terminal`` is storage-first and bounded: it reads the row, and only
then waits for a ``generation_events`` notification (or a one-second fallback
tick) before reading again; it always returns by its timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from app.db import generations as db
from app.db.database import Database
from app.db.notifications import Notifications
from app.kie.catalog import Catalog
from app.logs import get_logger

log = get_logger(__name__)

_FALLBACK_TICK_S = 1.0


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request."""


class NotConnected(Exception):
    """The database is not reachable right now."""


@dataclass(frozen=True)
class Created:
    """The outcome of create_generation."""

    row: asyncpg.Record
    created: bool  # False: an earlier request with the same idempotency key


class GenerationService:
    """Creates and reads generations; knows nothing of HTTP or Telegram."""

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

    def timeout_for(self, model: Any) -> float:
        """GENERATION_TIMEOUT_S, or the catalog's longer allowance for a video model."""
        if model.output == "video":
            return max(self._default_timeout_s, float(model.timeout_s))
        return self._default_timeout_s

    def _pool(self) -> asyncpg.Pool:
        pool = self._database.pool
        if pool is None:
            raise NotConnected("the database is not connected yet")
        return pool

    async def create_generation(
        self,
        *,
        owner: str,
        source: str,
        model_id: str,
        input: Any,
        idempotency_key: str | None = None,
    ) -> Created:
        """Validate against the catalog, insert ``queued`` and wake the submitter.

        Raises UnknownModelError / InvalidInputError (bad request), IdempotencyConflict.
        """
        model = self.catalog.get(model_id)
        clean = self.catalog.validate(model_id, input)
        async with self._pool().acquire() as conn, conn.transaction():
            row, created = await db.insert_idempotent(
                conn,
                generation_id=uuid.uuid4(),
                owner=owner,
                source=source,
                model=model.id,
                family=model.family,
                input=clean,
                idempotency_key=idempotency_key,
                timeout_s=self.timeout_for(model),
            )
        if not created and (row["model"] != model.id or _as_dict(row["input"]) != clean):
            raise IdempotencyConflict("this Idempotency-Key was already used for a different request")
        if created:
            log.info("generation.created", id=str(row["id"]), model=model.id, owner=owner, source=source)
        return Created(row, created)

    async def get(self, generation_id: uuid.UUID, owner: str | None = None) -> asyncpg.Record | None:
        """The generation, or None (also when it belongs to another owner)."""
        row = await db.get_generation(self._pool(), generation_id)
        if row is None or (owner is not None and row["owner"] != owner):
            return None
        return row

    async def list(
        self,
        *,
        owner: str,
        state: str | None = None,
        model: str | None = None,
        before: tuple[datetime, uuid.UUID] | None = None,
        limit: int = 20,
    ) -> list[asyncpg.Record]:
        """The owner's generations, newest first."""
        return await db.list_generations(
            self._pool(), owner=owner, state=state, model=model, before=before, limit=limit
        )

    async def wait_for_terminal(self, generation_id: uuid.UUID, timeout: float) -> asyncpg.Record | None:
        """The row once terminal, or as it is when ``timeout`` runs out; never hangs."""
        return await self._wait(generation_id, timeout, lambda row: row["state"] in db.TERMINAL_STATES)

    async def wait_for_change(
        self, generation_id: uuid.UUID, since: datetime, timeout: float
    ) -> asyncpg.Record | None:
        """The row once it changed after ``since`` (its ``updated_at``), or at ``timeout``."""
        return await self._wait(generation_id, timeout, lambda row: row["updated_at"] != since)

    async def _wait(
        self, generation_id: uuid.UUID, timeout: float, done: Callable[[asyncpg.Record], bool]
    ) -> asyncpg.Record | None:
        deadline = time.monotonic() + max(0.0, timeout)
        events = self._notifications.subscribe(db.EVENTS_CHANNEL)
        key = str(generation_id)
        row: asyncpg.Record | None = None
        try:
            while True:
                try:
                    row = await asyncio.wait_for(
                        db.get_generation(self._pool(), generation_id), max(0.1, deadline - time.monotonic())
                    )
                except (TimeoutError, NotConnected, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    pass  # storage unreachable for now: keep the last row we saw
                else:
                    if row is None or done(row):
                        return row
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return row
                await _next_event_for(events, key, min(remaining, _FALLBACK_TICK_S))
        finally:
            self._notifications.unsubscribe(db.EVENTS_CHANNEL, events)

    async def cancel(self, generation_id: uuid.UUID, owner: str | None = None) -> asyncpg.Record | None:
        """Stop tracking an open generation (KIE has no cancel); later callbacks are recorded only."""
        pool = self._pool()
        async with pool.acquire() as conn, conn.transaction():
            row = await db.get_generation(conn, generation_id)
            if row is None or (owner is not None and row["owner"] != owner):
                return None
            await db.apply_transition(
                conn, generation_id, db.Transition("canceled", error="canceled by the user")
            )
        return await db.get_generation(pool, generation_id)


async def _next_event_for(events: asyncio.Queue[str], key: str, timeout: float) -> None:
    """Wait until a notification mentions ``key`` (or an empty wake-up-all), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            payload = await asyncio.wait_for(events.get(), remaining)
        except TimeoutError:
            return
        if not payload or key in payload:
            return


def _as_dict(value: Any) -> Any:
    if isinstance(value, str):
        import orjson

        return orjson.loads(value)
    return value
