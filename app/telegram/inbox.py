"""The update inbox: webhook requests and polled batches are stored here before Telegram is told
we have them.

Webhook requests go through a group commit: updates arriving together share one INSERT and one
commit. Storing wakes this instance's workers in process (no NOTIFY: see app/db/telegram_updates.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from app.db import telegram_updates as db
from app.db.batching import GroupCommitter, Resolve
from app.db.connection import Executor
from app.db.database import Database
from app.logs import get_logger
from app.metrics import TELEGRAM_UPDATES
from app.telegram.updates import chat_of, update_id_of

log = get_logger(__name__)

_STORE_TIMEOUT_S = 5.0
_BURST_RECEIVING = 4  # webhook requests in flight at once that make a burst (Telegram opens up to 40)
_BURST_HOLD_S = 0.2

Payload = dict[str, Any] | str  # the update, or its JSON text as received
Row = tuple[int, int | None, Payload]


class UpdateInbox:
    """Stores raw updates, once each (a duplicate ``update_id`` is acknowledged, not stored)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._writer: GroupCommitter[Row, bool] = GroupCommitter(
            "telegram_inbox", self._write, timeout=_STORE_TIMEOUT_S
        )
        self.stored = asyncio.Event()  # set when updates were stored here: this instance's workers wake
        self._receiving = 0  # webhook requests being stored right now
        self._burst_until = 0.0  # loop time until which the intake counts as busy

    def start(self) -> None:
        """Start the group-commit writer (webhook requests)."""
        self._writer.start()

    async def stop(self) -> None:
        """Stop it; webhook requests still waiting fail (and Telegram sends them again)."""
        await self._writer.stop()

    async def receive(self, update: dict[str, Any], raw: bytes | None = None) -> bool:
        """Store one webhook update (group-committed); True when it was new. Raises NotAnUpdate,
        or a database error while the database is away.

        ``raw`` is the request body ``update`` was parsed from: stored as it came, it need not be
        serialised again (NUL escapes, which jsonb refuses, replaced).
        """
        payload: Payload = update if raw is None else raw.decode().replace("\\u0000", "\\ufffd")
        row = (update_id_of(update), chat_of(update), payload)
        self._receiving += 1
        if self._receiving >= _BURST_RECEIVING:
            self._burst_until = asyncio.get_running_loop().time() + _BURST_HOLD_S
        try:
            return await self._writer.submit(row)
        finally:
            self._receiving -= 1

    @property
    def busy(self) -> bool:
        """True during a burst of webhook requests (and a moment after its last busy instant: the
        requests of a burst come and go in waves, one per group commit)."""
        return asyncio.get_running_loop().time() < self._burst_until

    async def store(self, updates: list[dict[str, Any]], conn: Executor | None = None) -> int:
        """Store a batch (polling, inside the caller's transaction); how many were new."""
        rows: list[Row] = [(update_id_of(update), chat_of(update), update) for update in updates]
        return len(await self._insert(conn or self._database.require_pool(), rows))

    async def _write(self, batch: list[Row], resolve: Resolve[bool]) -> None:
        new = set(await self._insert(self._database.require_pool(), batch))
        resolve([row[0] in new for row in batch])

    async def _insert(self, conn: Executor, rows: list[Row]) -> list[int]:
        new = await db.store(conn, rows)
        if new:
            self.stored.set()
        duplicates = len(rows) - len(new)
        TELEGRAM_UPDATES.labels("stored").inc(len(new))
        if duplicates:
            TELEGRAM_UPDATES.labels("duplicate").inc(duplicates)
        log.debug("telegram.update_stored", stored=len(new), duplicates=duplicates)
        return new
