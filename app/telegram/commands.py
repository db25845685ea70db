"""The bot's commands (part 1): /start, /help, /models, /generate <model> <prompt>, /imagine <prompt>.

Handlers get their parts from the dispatcher's workflow data (``starter``, ``catalog``), and a
retried update can never start a second generation: the idempotency key is the update's id.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from app.kie.catalog import Catalog, InvalidInputError, UnknownModelError
from app.telegram import texts
from app.telegram.starter import GenerationStarter, NeedsMoreInput

_KINDS = ("image", "video", "audio")


def _kinds_keyboard() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(text=texts.KIND_TITLES[kind], callback_data=f"kind:{kind}")
                for kind in _KINDS
            ]
        ]
    )


async def start(message: Message) -> None:
    """A short welcome with the output kinds."""
    await message.answer(texts.WELCOME, reply_markup=_kinds_keyboard())


async def help_(message: Message) -> None:
    """What the commands do."""
    await message.answer(texts.HELP)


def models_text(catalog: Catalog, kinds: tuple[str, ...] = _KINDS) -> str:
    """The catalog grouped by output kind: one line per model."""
    lines: list[str] = []
    for kind in kinds:
        models = [m for m in catalog.models() if m.output == kind]
        if not models:
            continue
        lines.append(texts.KIND_TITLES.get(kind, kind))
        lines.extend(f"  {model.id}: {model.title}" for model in models)
        lines.append("")
    return "\n".join(lines).strip()


async def models(message: Message, catalog: Catalog) -> None:
    """The catalog grouped by output kind."""
    for chunk in _chunks(models_text(catalog)):
        await message.answer(chunk)


async def kind(query: CallbackQuery, catalog: Catalog) -> None:
    """A kind button from /start: that kind's models."""
    chosen = (query.data or "").split(":", 1)[1]
    await query.answer()
    if chosen in _KINDS and isinstance(query.message, Message):
        for chunk in _chunks(models_text(catalog, (chosen,))):
            await query.message.answer(chunk)


async def generate(
    message: Message, command: CommandObject, starter: GenerationStarter, catalog: Catalog
) -> None:
    """``/generate <model id> <prompt>``: that model with its defaults."""
    model_id, _, prompt = (command.args or "").strip().partition(" ")
    example = next((m.id for m in catalog.models() if m.output == "image"), "google/nano-banana")
    if not model_id or not prompt.strip():
        await message.answer(texts.USAGE_GENERATE.format(example=example))
        return
    await _start(message, starter, model_id, prompt.strip())


async def imagine(message: Message, command: CommandObject, starter: GenerationStarter) -> None:
    """``/imagine <prompt>``: the default image model."""
    prompt = (command.args or "").strip()
    if not prompt:
        await message.answer(texts.USAGE_IMAGINE)
        return
    await _start(message, starter, starter.default_image_model, prompt)


async def _start(message: Message, starter: GenerationStarter, model_id: str, prompt: str) -> None:
    if message.from_user is None:
        return
    try:
        await starter.start(message, model_id, prompt)
    except UnknownModelError:
        await message.answer(texts.UNKNOWN_MODEL.format(model=model_id))
    except NeedsMoreInput as exc:
        await message.answer(texts.NEEDS_MORE.format(model=model_id, fields=", ".join(exc.fields)))
    except InvalidInputError as exc:
        await message.answer(texts.INVALID_INPUT.format(message=f"{exc.field}: {exc.reason}"))


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
    """The commands, on a router of their own (one per dispatcher)."""
    router = Router(name="commands")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(models, Command("models"))
    router.callback_query.register(kind, F.data.startswith("kind:"))
    router.message.register(generate, Command("generate"))
    router.message.register(imagine, Command("imagine"))
    return router
