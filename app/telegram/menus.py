"""The menus: /start and the main menu, a kind's models (paged), a model's card, the wizard's entry,
/language, /help, /cancel, and the result message's buttons (Repeat, Same settings with a new
prompt, New). A button that no longer matches anything gets "this menu expired" and a fresh menu.
"""

from __future__ import annotations

import uuid

from aiogram import Bot, Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from app.telegram import history, keyboards, wizard
from app.telegram.context import KINDS, BotContext
from app.telegram.i18n import LANGUAGES, t
from app.telegram.starter import LimitReached, prompt_field


async def start(message: Message, state: FSMContext, lang: str) -> None:
    """/start: the welcome and the main menu (a wizard in progress is left)."""
    await state.set_state(None)
    await state.update_data(wizard=None)
    await message.answer(t(lang, "welcome"), reply_markup=keyboards.main_menu(lang))


async def help_(message: Message, lang: str) -> None:
    """/help."""
    await message.answer(t(lang, "help"), reply_markup=keyboards.main_menu(lang))


async def language(message: Message, state: FSMContext, lang: str) -> None:
    """/language: switch between English and Russian."""
    chosen = LANGUAGES[(LANGUAGES.index(lang) + 1) % len(LANGUAGES)]
    await state.update_data(lang=chosen)
    await message.answer(t(chosen, "language.set"), reply_markup=keyboards.main_menu(chosen))


async def cancel(message: Message, state: FSMContext, ctx: BotContext, lang: str) -> None:
    """/cancel: end the wizard, or stop tracking the user's running generation."""
    if (await state.get_data()).get("wizard"):
        await state.set_state(None)
        await state.update_data(wizard=None)
        await message.answer(t(lang, "canceled"), reply_markup=keyboards.main_menu(lang))
        return
    assert message.from_user is not None
    owner = f"telegram:{message.from_user.id}"
    running = [g for g in await ctx.generations.list(owner=owner, limit=20) if not g.terminal]
    if not running:
        await message.answer(t(lang, "nothing_to_cancel"))
        return
    latest = running[0]
    await ctx.generations.cancel(latest.id, owner)
    await message.answer(t(lang, "canceled.generation", model=latest.model))


async def show_kind(message: Message, ctx: BotContext, lang: str, kind: str, page: int) -> None:
    """A page of the models that make ``kind``."""
    models = ctx.models_of(kind)
    markup, pages = keyboards.model_page(lang, ctx.catalog_version, kind, models, page)
    text = t(lang, "models.pick", kind=t(lang, f"kind.{kind}"), page=min(page, pages - 1) + 1, pages=pages)
    await message.answer(text, reply_markup=markup)


async def show_card(message: Message, ctx: BotContext, lang: str, index: int) -> None:
    """What a model does, what it needs, its defaults, and Start."""
    model = ctx.models[index]
    needs = ", ".join(model.required) or t(lang, "card.nothing")
    defaults = ", ".join(
        f"{spec.name}={spec.default_value()}" for spec in model.fields.values() if spec.has_default
    )
    note = (model.notes or "").split(". ", 1)[0][:200]
    text = t(lang, "card", title=model.title, note=note, needs=needs, defaults=defaults or "-")
    await message.answer(
        text, reply_markup=keyboards.model_card(lang, ctx.catalog_version, index, model.output)
    )


async def on_button(query: CallbackQuery, state: FSMContext, ctx: BotContext, bot: Bot, lang: str) -> None:
    """Every inline button; anything that matches nothing is an expired menu."""
    data = query.data or ""
    message = query.message
    if not isinstance(message, Message):
        await query.answer()
        return
    handled = False
    if data.split(":", 1)[0] in wizard.OPS:
        handled = await wizard.on_button(query, state, ctx, bot, lang)
    else:
        handled = await _menu_button(query, message, state, ctx, bot, lang, data)
    if not handled:
        await query.answer(t(lang, "expired"))
        await message.answer(t(lang, "expired"), reply_markup=keyboards.main_menu(lang))


async def _menu_button(
    query: CallbackQuery, message: Message, state: FSMContext, ctx: BotContext, bot: Bot, lang: str, data: str
) -> bool:
    op, *args = data.split(":")
    if op == "mn" and args and args[0] in KINDS:
        await query.answer()
        await show_kind(message, ctx, lang, args[0], 0)
    elif op == "mn" and args == ["history"]:
        await query.answer()
        await history.show(message, ctx, lang, query.from_user.id, 0)
    elif op == "mn" and args == ["help"]:
        await query.answer()
        await help_(message, lang)
    elif (op == "mn" and args == ["menu"]) or op == "rw":
        await query.answer()
        await message.answer(t(lang, "welcome"), reply_markup=keyboards.main_menu(lang))
    elif (
        op == "pg"
        and len(args) == 3
        and args[0] == ctx.catalog_version
        and args[1] in KINDS
        and args[2].isdigit()
    ):
        await query.answer()
        await show_kind(message, ctx, lang, args[1], int(args[2]))
    elif op in ("md", "ws") and len(args) == 2 and args[1].isdigit():
        model = ctx.model_at(args[0], int(args[1]))
        if model is None:
            return False
        await query.answer()
        if op == "md":
            await show_card(message, ctx, lang, int(args[1]))
        else:
            await wizard.begin(message, state, ctx, lang, wizard.new_wizard(model))
    elif op in ("rp", "rn") and len(args) == 1:
        return await _result_button(query, message, state, ctx, bot, lang, op, args[0])
    elif op == "hs" and len(args) == 1 and args[0].isdigit():
        await query.answer()
        await history.show(message, ctx, lang, query.from_user.id, int(args[0]))
    elif op == "hr" and len(args) == 1:
        return await history.resend(query, message, ctx, bot, lang, args[0])
    else:
        return False
    return True


async def _result_button(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    ctx: BotContext,
    bot: Bot,
    lang: str,
    op: str,
    gid: str,
) -> bool:
    try:
        generation_id = uuid.UUID(hex=gid)
    except ValueError:
        return False
    generation = await ctx.generations.get(generation_id, f"telegram:{query.from_user.id}")
    if generation is None:
        return False
    try:
        model = ctx.catalog.get(generation.model)
    except LookupError:
        return False
    await query.answer()
    values = dict(generation.input or {})
    if op == "rn":  # the same settings with a new prompt: ask the prompt, then the settings
        field = prompt_field(model)
        if field is not None:
            values.pop(field, None)
        await wizard.begin(
            message, state, ctx, lang, wizard.new_wizard(model, values, [field] if field else [])
        )
        return True
    try:
        await ctx.starter.check_limits(query.from_user.id, lang)
        await ctx.starter.start(
            bot,
            chat_id=message.chat.id,
            user_id=query.from_user.id,
            model=model,
            input=values,
            idempotency_key=f"telegram:repeat:{query.id}",  # this press: a retried update is one repeat
            lang=lang,
        )
    except LimitReached as exc:
        await message.answer(exc.message)
    return True


async def _not_a_command(message: Message) -> bool:
    """A wizard answer is anything but a command. (A coroutine: aiogram runs a plain function or a
    magic filter in a worker thread, a thread hop for every message.)"""
    return not (message.text or "").startswith("/")


def make_router() -> Router:
    """The conversation: commands, wizard answers and every button."""
    router = Router(name="menus")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(language, Command("language"))
    router.message.register(cancel, Command("cancel"))
    router.message.register(history.command, Command("history"))
    # StateFilter, not the bare state: a State is a plain callable, which aiogram runs in a thread.
    router.message.register(wizard.answer_message, StateFilter(wizard.Wizard.active), _not_a_command)
    router.callback_query.register(on_button)
    return router
