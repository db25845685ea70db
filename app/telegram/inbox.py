"""The update inbox: webhook requests and polled batches are stored here before Telegram is told
we have them."""

from __future__ import annotations

from typing import Any

from app.db import telegram_updates as db
from app.db.connection import Executor
from app.db.database import Database
from app.logs import get_logger
from app.metrics import TELEGRAM_UPDATES
from app.telegram.updates import chat_of, update_id_of

log = get_logger(__name__)


class UpdateInbox:
    """Stores raw updates, once each (a duplicate ``update_id`` is acknowledged, not stored)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def store(self, updates: list[dict[str, Any]], conn: Executor | None = None) -> int:
        """Store ``updates`` (raw JSON); how many were new. Raises while the database is away."""
        rows = [(update_id_of(update), chat_of(update), update) for update in updates]
        new = await db.store(conn or self._database.require_pool(), rows)
        duplicates = len(rows) - len(new)
        TELEGRAM_UPDATES.labels("stored").inc(len(new))
        if duplicates:
            TELEGRAM_UPDATES.labels("duplicate").inc(duplicates)
        log.info("telegram.update_stored", stored=len(new), duplicates=duplicates, ids=new[:20])
        return len(new)
