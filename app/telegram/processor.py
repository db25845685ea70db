"""Handling stored updates, on every instance: claim the oldest pending update of each chat, feed
it to aiogram's dispatcher, mark it done.

A handler that raises is retried with backoff a few times; then the update is marked failed, the
user gets a short apology and the chat's next updates go on, so one bad update never blocks a chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools

from aiogram import Bot, Dispatcher

from app.backoff import Backoff
from app.db import telegram_updates as db
from app.db.database import Database
from app.logs import get_logger
from app.metrics import TELEGRAM_INBOX_DEPTH, TELEGRAM_INBOX_OLDEST, TELEGRAM_UPDATES
from app.random_ids import random_hex
from app.redaction import describe_error
from app.supervision import BoundedWorkers
from app.telegram.i18n import language_for, t
from app.telegram.inbox import UpdateInbox
from app.telegram.updates import chat_of

log = get_logger(__name__)

MAX_ATTEMPTS = 4
_LEASE_S = 30.0  # longer than a handler may take (it is timed out before); a dead worker's claim ends
_HANDLER_TIMEOUT_S = 20.0
_CONCURRENCY = 16
_IDLE_S = 1.0  # how soon updates stored by another instance are picked up here
_GATHER_S = 0.005  # how long a free slot waits for others before claiming on its own
_BURST_PACE_S = 0.05  # during a webhook burst, at most one update handled in this time
_FLUSH_S = 5.0
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
        concurrency: int = _CONCURRENCY,
    ) -> None:
        self._database = database
        self._dispatcher = dispatcher
        self._bot = bot
        self._inbox = inbox
        self._token = f"{instance}:{random_hex(4)}"
        self._pruned_at = 0.0
        # A handler holds one pooled connection for its chat's lock and may take a second for a
        # write: the caller keeps this below the pool's size (see assembly).
        self._slots = max(1, concurrency)
        self._cursor: int | None = None  # the last chat claimed: claims go round the chats from here
        self._finished = asyncio.Event()  # a handler ended: its chat's next update may be claimed
        self._done: list[int] = []  # handled, not yet marked done (the next claim does it)
        self._down = Backoff(base=0.2, cap=5.0)

    async def run(self) -> None:
        """Forever: keep up to ``concurrency`` updates in hand, claiming more as handlers end, and
        wait while nothing is claimable until this instance stores more, a handler ends (its
        chat's next update is then due), or a short tick (for updates another instance stored)."""
        workers = BoundedWorkers("telegram.updates", self._slots)
        try:
            while True:
                wanted = await self._room(workers)
                self._inbox.stored.clear()
                self._finished.clear()
                try:
                    claimed = await self._claim(wanted)
                    await self._housekeeping()
                    self._down.reset()
                except (OSError, TimeoutError) as exc:  # the database is away (DatabaseUnavailable too)
                    log.warning("telegram.inbox_unavailable", error=describe_error(exc))
                    await asyncio.sleep(self._down.next_delay())
                    continue
                for stored in claimed:
                    await workers.spawn(functools.partial(self._handle, stored), str(stored.update_id))
                if len(claimed) < wanted:  # nothing more is claimable now
                    await self._wait_for_work()
        finally:
            await workers.close()  # their updates' leases run out and they are handled again
            await self._flush_done()

    async def _room(self, workers: BoundedWorkers) -> int:
        """Wait until there is room to claim, and return how many to claim.

        Normally that is once half the slots are free (or a moment has passed with one free):
        claiming for several handlers at once shares one statement, and one commit, among them.
        During a burst of webhook requests the intake comes first, since it is what Telegram
        waits for and what keeps nothing from being lost: one handler at a time, started at most
        every ``_BURST_PACE_S``, so the burst is stored at full speed and handled right after
        (and a long burst still sees its updates handled, if slowly).
        """
        await workers.wait_for_free()
        if self._inbox.busy:
            await asyncio.sleep(_BURST_PACE_S)
            await workers.drain()  # the handler still running (each one is timed out: bounded)
            if self._inbox.busy:
                return 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_GATHER_S):
                while workers.free < (self._slots + 1) // 2:
                    self._finished.clear()
                    await self._finished.wait()
        return workers.free

    async def _claim(self, limit: int) -> list[db.StoredUpdate]:
        pool = self._database.require_pool()
        done, self._done = self._done, []
        try:
            claimed = await db.claim(
                pool, self._token, lease_s=_LEASE_S, limit=limit, after_chat=self._cursor, done=done
            )
        except BaseException:
            self._done = done + self._done  # not marked: the next claim marks them
            raise
        TELEGRAM_UPDATES.labels("handled").inc(len(done))
        self._cursor = db.next_cursor(claimed, self._cursor)
        return claimed

    async def _flush_done(self) -> None:
        """Mark what was handled done before stopping (else it is handled again after its lease)."""
        if not self._done:
            return
        done, self._done = self._done, []
        try:
            async with asyncio.timeout(_FLUSH_S):
                await db.mark_done(self._database.require_pool(), done, self._token)
            TELEGRAM_UPDATES.labels("handled").inc(len(done))
        except Exception as exc:
            log.warning("telegram.done_unrecorded", updates=len(done), error=describe_error(exc))

    async def _wait_for_work(self) -> None:
        waits = [asyncio.ensure_future(event.wait()) for event in (self._inbox.stored, self._finished)]
        try:
            await asyncio.wait(waits, timeout=_IDLE_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _handle(self, stored: db.StoredUpdate) -> None:
        try:
            await self._handle_one(stored)
        finally:
            self._finished.set()

    async def _handle_one(self, stored: db.StoredUpdate) -> None:
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
        self._done.append(stored.update_id)  # marked done with the next claim

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
