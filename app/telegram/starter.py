"""Starting a generation from a chat: limits first, then the generation and its delivery row in
one transaction, then one status message the leader keeps up to date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiogram import Bot

from app.config import TelegramSettings
from app.db import generation_stats
from app.db import telegram_deliveries as deliveries
from app.db.connection import Conn
from app.db.database import Database
from app.generations.model import Generation
from app.generations.service import GenerationService
from app.kie.catalog import Catalog, Model
from app.logs import get_logger
from app.telegram.i18n import t

log = get_logger(__name__)

_TEXT_TYPES = ("string",)


class NeedsMoreInput(ValueError):
    """The model needs required fields besides the prompt (the wizard asks for them)."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


class LimitReached(Exception):
    """The user may not start another generation now: ``message`` says until when."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def prompt_field(model: Model) -> str | None:
    """The field a prompt goes into: ``prompt``, else the first required text field."""
    if "prompt" in model.fields:
        return "prompt"
    return next((n for n in model.required if model.fields[n].type in _TEXT_TYPES), None)


class GenerationStarter:
    """Creates generations owned by Telegram users (``telegram:<user id>``)."""

    def __init__(
        self, database: Database, generations: GenerationService, catalog: Catalog, settings: TelegramSettings
    ) -> None:
        self._database = database
        self._generations = generations
        self._catalog = catalog
        self._settings = settings
        self.default_image_model = settings.default_image_model

    def prompt_input(self, model_id: str, prompt: str) -> tuple[Model, dict[str, Any]]:
        """The input of a prompt-only start; raises UnknownModelError or NeedsMoreInput."""
        model = self._catalog.get(model_id)
        field = prompt_field(model)
        missing = [name for name in model.required if name != field]
        if field is None or missing:
            raise NeedsMoreInput(missing or ["prompt"])
        return model, {field: prompt}

    async def check_limits(self, user_id: int, lang: str) -> None:
        """Raise LimitReached when the user has too many in flight, or used today's allowance."""
        pool = self._database.require_pool()
        owner = f"telegram:{user_id}"
        limit = self._settings.max_active_per_user
        active = await generation_stats.open_count(pool, owner)
        if active >= limit:
            raise LimitReached(t(lang, "limit.active", count=active, limit=limit))
        daily = self._settings.daily_limit
        if daily:
            midnight = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            if await generation_stats.created_since(pool, owner, midnight) >= daily:
                reset = (midnight + dt.timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
                raise LimitReached(t(lang, "limit.daily", limit=daily, reset=reset))

    async def start(
        self,
        bot: Bot,
        *,
        chat_id: int,
        user_id: int,
        model: Model,
        input: dict[str, Any],
        idempotency_key: str,
        lang: str,
    ) -> Generation:
        """Create (or, for a retried update, find) the generation and its status message.

        Raises LimitReached or InvalidInputError; creates nothing then.
        """

        async def with_delivery(conn: Conn, generation: Generation) -> None:
            await deliveries.insert(conn, generation.id, chat_id, lang)

        created = await self._generations.create_generation(
            owner=f"telegram:{user_id}",
            source="telegram",
            model_id=model.id,
            input=input,
            idempotency_key=idempotency_key,
            also=with_delivery,
        )
        generation = created.generation
        pool = self._database.require_pool()
        existing = await deliveries.get(pool, generation.id, chat_id)
        if existing is not None and existing.status_message_id is None:
            text = t(lang, "status.queued", model=model.id)
            status = await bot.send_message(chat_id, text)
            await deliveries.set_status_message(pool, generation.id, chat_id, status.message_id, text)
        log.info("telegram.generation_started", id=str(generation.id), model=model.id, new=created.created)
        return generation
