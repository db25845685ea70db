"""Starting a generation from a chat: the catalog's defaults, the generation and its delivery row
in one transaction, then one status message the leader keeps up to date."""

from __future__ import annotations

from typing import Any

from aiogram.types import Message

from app.db import telegram_deliveries as deliveries
from app.db.connection import Conn
from app.db.database import Database
from app.generations.model import Generation
from app.generations.service import GenerationService
from app.kie.catalog import Catalog, Model
from app.logs import get_logger
from app.telegram import texts

log = get_logger(__name__)

_TEXT_TYPES = ("string",)


class NeedsMoreInput(ValueError):
    """The model needs required fields besides the prompt (the wizard of part 2 asks for them)."""

    def __init__(self, fields: list[str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = fields


def prompt_field(model: Model) -> str | None:
    """The field a prompt goes into: ``prompt``, else the first required text field."""
    if "prompt" in model.fields:
        return "prompt"
    return next((n for n in model.required if model.fields[n].type in _TEXT_TYPES), None)


class GenerationStarter:
    """Creates generations owned by Telegram users (``telegram:<user id>``)."""

    def __init__(
        self, database: Database, generations: GenerationService, catalog: Catalog, default_image_model: str
    ) -> None:
        self._database = database
        self._generations = generations
        self._catalog = catalog
        self.default_image_model = default_image_model

    async def start(self, message: Message, model_id: str, prompt: str) -> Generation:
        """Create (or, for a retried update, find) the generation and its status message.

        Raises UnknownModelError, NeedsMoreInput or InvalidInputError; creates nothing then.
        """
        assert message.from_user is not None
        model = self._catalog.get(model_id)
        field = prompt_field(model)
        missing = [name for name in model.required if name != field]
        if field is None or missing:
            raise NeedsMoreInput(missing or ["prompt"])
        chat_id = message.chat.id
        input: dict[str, Any] = {field: prompt}

        async def with_delivery(conn: Conn, generation: Generation) -> None:
            await deliveries.insert(conn, generation.id, chat_id)

        created = await self._generations.create_generation(
            owner=f"telegram:{message.from_user.id}",
            source="telegram",
            model_id=model.id,
            input=input,
            # The message, not the update: the same message retried or redelivered is one request.
            idempotency_key=f"telegram:{chat_id}:{message.message_id}",
            also=with_delivery,
        )
        generation = created.generation
        pool = self._database.require_pool()
        existing = await deliveries.get(pool, generation.id, chat_id)
        if existing is not None and existing.status_message_id is None:
            text = texts.STATUS_QUEUED.format(model=model.id)
            status = await message.answer(text)
            await deliveries.set_status_message(pool, generation.id, chat_id, status.message_id, text)
        log.info("telegram.generation_started", id=str(generation.id), model=model.id, new=created.created)
        return generation
