"""How updates reach us, run by the leader only: in webhook mode, ``setWebhook`` once per term;
in polling mode, ``deleteWebhook`` (pending updates kept) and then ``getUpdates``, each batch
stored before the offset (kept in the database) moves past it.

Only the active instance polls, so two pollers never knock each other off; a 409 Conflict (a
poller or a webhook elsewhere) is backed off, logged and shown in ``components.telegram``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramConflictError, TelegramRetryAfter
from aiogram.types import BotCommand

from app.backoff import Backoff
from app.db import telegram_state
from app.db.database import Database
from app.db.leadership import StaleEpochError
from app.leader import LeaderTerm
from app.logs import get_logger
from app.redaction import describe_error
from app.telegram.bot import WEBHOOK_PATH, bot_id_of
from app.telegram.inbox import UpdateInbox
from app.telegram.updates import ALLOWED_UPDATES

log = get_logger(__name__)

_POLL_TIMEOUT_S = 25
_BATCH = 100
_MAX_CONNECTIONS = 40
COMMANDS = [
    BotCommand(command="start", description="Start here"),
    BotCommand(command="imagine", description="An image from a prompt"),
    BotCommand(command="generate", description="Use a model: /generate <model> <prompt>"),
    BotCommand(command="models", description="The models I can use"),
    BotCommand(command="help", description="What I can do"),
]


class TransportState:
    """What ``components.telegram`` shows of the transport."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.conflict: str | None = None
        self.conflict_at: float | None = None
        self.conflict_delays: list[float] = []  # the backoff after each 409 (the last 20)
        self.last_poll_at: float | None = None
        self.webhook_set: bool = False
        self.last_error: str | None = None

    def details(self) -> dict[str, Any]:
        """Mode, webhook or polling lag, and any conflict."""
        details: dict[str, Any] = {"mode": self.mode}
        if self.mode == "webhook":
            details["webhook_set"] = self.webhook_set
        elif self.last_poll_at is not None:
            details["polling_lag_s"] = round(time.monotonic() - self.last_poll_at, 1)
        if self.conflict is not None:
            details["conflict"] = self.conflict
        return details


class Transport:
    """The leader's half of receiving updates."""

    def __init__(
        self,
        bot: Bot,
        database: Database,
        inbox: UpdateInbox,
        *,
        mode: str,
        public_base_url: str,
        secret: str,
    ) -> None:
        self._bot = bot
        self._database = database
        self._inbox = inbox
        self._public_base_url = public_base_url.rstrip("/")
        self._secret = secret
        self.state = TransportState(mode)

    async def run(self, term: LeaderTerm) -> None:
        """Set up this term's transport, then (polling) poll until the term ends."""
        backoff = Backoff(base=1.0, cap=60.0)
        while True:
            try:
                await self._activate()
                break
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
            except Exception as exc:
                self.state.last_error = describe_error(exc)
                log.warning("telegram.activation_failed", mode=self.state.mode, error=self.state.last_error)
                await asyncio.sleep(backoff.next_delay())
        if self.state.mode == "polling":
            await self._poll(term)
        else:
            await asyncio.Event().wait()  # the webhook is set; nothing more to do this term

    async def _activate(self) -> None:
        if self.state.mode == "webhook":
            await self._bot.set_webhook(
                url=self._public_base_url + WEBHOOK_PATH,
                secret_token=self._secret,
                allowed_updates=ALLOWED_UPDATES,
                max_connections=_MAX_CONNECTIONS,
            )
            self.state.webhook_set = True
            log.info("telegram.webhook_set", url=self._public_base_url + WEBHOOK_PATH)
        else:
            await self._bot.delete_webhook(drop_pending_updates=False)
            log.info("telegram.polling", message="webhook removed (pending updates kept); polling getUpdates")
        await self._bot.set_my_commands(COMMANDS)

    async def _poll(self, term: LeaderTerm) -> None:
        bot_id = bot_id_of(self._bot.token)
        backoff = Backoff(base=1.0, cap=60.0)
        while True:
            try:
                offset = await telegram_state.poll_offset(self._database.require_pool(), bot_id)
                updates = await self._bot.get_updates(
                    offset=offset, limit=_BATCH, timeout=_POLL_TIMEOUT_S, allowed_updates=ALLOWED_UPDATES
                )
                self.state.last_poll_at = time.monotonic()
                if updates:
                    raw = [update.model_dump(mode="json", exclude_unset=True) for update in updates]
                    async with term.fenced() as conn:
                        await self._inbox.store(raw, conn)
                        await telegram_state.advance_poll_offset(
                            conn, bot_id, max(u.update_id for u in updates) + 1
                        )
                self.state.conflict = None
                backoff.reset()
            except TelegramConflictError as exc:
                self.state.conflict = describe_error(exc)
                self.state.conflict_at = time.monotonic()
                delay = backoff.next_delay()
                self.state.conflict_delays = [*self.state.conflict_delays[-19:], delay]
                log.warning("telegram.poll_conflict", error=self.state.conflict, retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
            except StaleEpochError:
                raise  # another leader: this term is over
            except Exception as exc:
                self.state.last_error = describe_error(exc)
                delay = backoff.next_delay()
                log.warning("telegram.poll_failed", error=self.state.last_error, retry_in_s=round(delay, 1))
                await asyncio.sleep(delay)
