"""Handling stored updates, on every instance: claim the oldest pending update of each chat, feed
it to aiogram's dispatcher, mark it done.

A handler that raises is retried with backoff a few times; then the update is marked failed, the
user gets a short apology and the chat's next updates go on, so one bad update never blocks a chat.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiogram import Bot, Dispatcher

from app.backoff import Backoff
from app.db import telegram_updates as db
from app.db.database import Database
from app.logs import get_logger
from app.metrics import TELEGRAM_INBOX_DEPTH, TELEGRAM_INBOX_OLDEST, TELEGRAM_UPDATES
from app.random_ids import random_hex
from app.redaction import describe_error
from app.telegram.i18n import language_for, t
from app.telegram.inbox import UpdateInbox
from app.telegram.updates import chat_of

log = get_logger(__name__)

MAX_ATTEMPTS = 4
_LEASE_S = 30.0  # longer than a handler may take (it is timed out before); a dead worker's claim ends
_HANDLER_TIMEOUT_S = 20.0
_BATCH = 16
_IDLE_S = 1.0  # how soon updates stored by another instance are picked up here
_KEEP_S = 48 * 3600.0  # handled updates are kept this long to drop Telegram's duplicates
_RETRY = Backoff(base=0.5, cap=30.0)


class UpdateProcessor:
    """Claims and handles stored updates; runs on every instance."""

    def __init__(
        self,
        database: Database,
        dispatcher: Dispatcher,
        bot: Bot,
        inbox: UpdateInbox,
        instance: str,
        *,
        concurrency: int = _BATCH,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._bot = bot
        self._inbox = inbox
        self._token = f"{instance}:{random_hex(4)}"
        self._pruned_at = 0.0
        # A handler holds one pooled connection for its chat's lock and takes a second for its
        # queries: more handlers at once than half the pool would wait on each other for ever.
        self._batch = max(1, concurrency)
        self._down = Backoff(base=0.2, cap=5.0)

    async def run(self) -> None:
        """Forever: handle what is pending, then wait until this instance stores more (or a short
        tick, for updates another instance stored)."""
        while True:
            self._inbox.stored.clear()
            try:
                handled = await self.run_once()
                self._down.reset()
            except (OSError, TimeoutError) as exc:  # the database is away (DatabaseUnavailable too)
                log.warning("telegram.inbox_unavailable", error=describe_error(exc))
                await asyncio.sleep(self._down.next_delay())
                continue
            if handled:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_IDLE_S):
                    await self._inbox.stored.wait()

    async def run_once(self) -> int:
        """Claim one batch (one update per chat) and handle it; how many were claimed."""
        pool = self._database.require_pool()
        claimed = await db.claim(pool, self._token, lease_s=_LEASE_S, limit=self._batch)
        if claimed:
            await asyncio.gather(*(self._handle(update) for update in claimed))
        await self._housekeeping()
        return len(claimed)

    async def _handle(self, stored: db.StoredUpdate) -> None:
        pool = self._database.require_pool()
        try:
            async with asyncio.timeout(_HANDLER_TIMEOUT_S):
                await self._dispatcher.feed_raw_update(self._bot, stored.payload)
        except Exception as exc:
            error = describe_error(exc)
            if stored.attempts < MAX_ATTEMPTS:
                delay = _RETRY.delay_for(stored.attempts)
                await db.retry_later(pool, stored.update_id, self._token, error, delay)
                TELEGRAM_UPDATES.labels("retried").inc()
                log.warning(
                    "telegram.update_retry",
                    update_id=stored.update_id,
                    attempt=stored.attempts,
                    retry_in_s=round(delay, 2),
                    error=error,
                )
                return
            await db.mark_failed(pool, stored.update_id, self._token, error)
            TELEGRAM_UPDATES.labels("failed").inc()
            log.error(
                "telegram.update_failed", update_id=stored.update_id, attempts=stored.attempts, error=error
            )
            await self._apologize(stored)
            return
        await db.mark_done(pool, stored.update_id, self._token)
        TELEGRAM_UPDATES.labels("handled").inc()

    async def _apologize(self, stored: db.StoredUpdate) -> None:
        chat_id = stored.chat_id if stored.chat_id is not None else chat_of(stored.payload)
        if chat_id is None:
            return
        try:
            await self._bot.send_message(chat_id, t(_language_of(stored.payload), "apology"))
        except Exception as exc:  # the apology is a courtesy: the update is already marked failed
            log.warning("telegram.apology_failed", update_id=stored.update_id, error=describe_error(exc))

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._pruned_at < 60.0:
            return
        self._pruned_at = loop.time()
        pool = self._database.require_pool()
        await db.prune(pool, _KEEP_S)
        depth, oldest = await db.depth(pool)
        TELEGRAM_INBOX_DEPTH.set(depth)
        TELEGRAM_INBOX_OLDEST.set(oldest)


def _language_of(update: dict[str, object]) -> str:
    """The sender's language, from the raw update (its message or button press)."""
    for kind in ("message", "edited_message", "callback_query"):
        event = update.get(kind)
        if isinstance(event, dict) and isinstance(event.get("from"), dict):
            return language_for(str(event["from"].get("language_code") or ""))
    return "en"
