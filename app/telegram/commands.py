"""The typed commands: /models (the catalog by output kind), /generate <model id> <prompt> and
/imagine <prompt> (``TELEGRAM_DEFAULT_IMAGE_MODEL``), each started with the model's defaults.

A retried update can never start a second generation: the idempotency key is the message.
"""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from app.kie.catalog import InvalidInputError, UnknownModelError
from app.telegram import keyboards
from app.telegram.context import KINDS, BotContext
from app.telegram.i18n import t
from app.telegram.starter import LimitReached, NeedsMoreInput


def models_text(ctx: BotContext, lang: str, kinds: tuple[str, ...] = KINDS) -> str:
    """The catalog grouped by output kind: one line per model."""
    lines: list[str] = []
    for kind in kinds:
        models = ctx.models_of(kind)
        if models:
            lines.append(t(lang, f"kind.{kind}"))
            lines.extend(f"  {model.id}: {model.title}" for _, model in models)
            lines.append("")
    return "\n".join(lines).strip()


async def models(message: Message, ctx: BotContext, lang: str) -> None:
    """/models."""
    for chunk in _chunks(models_text(ctx, lang)):
        await message.answer(chunk)


async def generate(message: Message, command: CommandObject, ctx: BotContext, bot: Bot, lang: str) -> None:
    """``/generate <model id> <prompt>``."""
    model_id, _, prompt = (command.args or "").strip().partition(" ")
    if not model_id or not prompt.strip():
        example = next((m.id for _, m in ctx.models_of("image")), "google/nano-banana")
        await message.answer(t(lang, "usage.generate", example=example))
        return
    await _start(message, ctx, bot, lang, model_id, prompt.strip())


async def imagine(message: Message, command: CommandObject, ctx: BotContext, bot: Bot, lang: str) -> None:
    """``/imagine <prompt>``."""
    prompt = (command.args or "").strip()
    if not prompt:
        await message.answer(t(lang, "usage.imagine"))
        return
    await _start(message, ctx, bot, lang, ctx.starter.default_image_model, prompt)


async def _start(message: Message, ctx: BotContext, bot: Bot, lang: str, model_id: str, prompt: str) -> None:
    if message.from_user is None:
        return
    try:
        model, input = ctx.starter.prompt_input(model_id, prompt)
        await ctx.starter.check_limits(message.from_user.id, lang)
        await ctx.starter.start(
            bot,
            chat_id=message.chat.id,
            user_id=message.from_user.id,
            model=model,
            input=input,
            # The message, not the update: the same message retried or redelivered is one request.
            idempotency_key=f"telegram:{message.chat.id}:{message.message_id}",
            lang=lang,
        )
    except UnknownModelError:
        await message.answer(t(lang, "unknown_model", model=model_id), reply_markup=keyboards.main_menu(lang))
    except NeedsMoreInput as exc:
        await message.answer(t(lang, "needs_more", model=model_id, fields=", ".join(exc.fields)))
    except InvalidInputError as exc:
        await message.answer(t(lang, "invalid", message=f"{exc.field}: {exc.reason}"))
    except LimitReached as exc:
        await message.answer(exc.message)


def _chunks(text: str, limit: int = 4000) -> list[str]:
    """Telegram's messages hold 4096 characters: split on line ends."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        if len(current) + len(line) > limit:
            chunks.append(current)
            current = ""
        current += line
    if current.strip():
        chunks.append(current)
    return chunks


def make_router() -> Router:
    """The typed commands, on a router of their own (one per dispatcher)."""
    router = Router(name="commands")
    router.message.register(models, Command("models"))
    router.message.register(generate, Command("generate"))
    router.message.register(imagine, Command("imagine"))
    return router
