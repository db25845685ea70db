"""The parameter wizard, driven entirely by the catalog: it asks each required field in turn, then
shows the optional ones as a settings screen with their defaults, then a confirmation, then starts.

Its state (model, values, where it is) lives in the conversation storage under ``wizard``, with a
short id that every button carries: a button from an older wizard, or from before a deploy that
lost nothing but changed the catalog, is answered "this menu expired". Any instance can continue
any wizard, since nothing of it is in memory.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiogram import Bot
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from app.kie.catalog import FieldSpec, InvalidInputError, Model
from app.telegram import keyboards
from app.telegram.context import BotContext
from app.telegram.fields import WrongAnswer, media_kind, parse_choice, parse_text, question, shown
from app.telegram.i18n import t
from app.telegram.media_input import MediaRejected, store_media
from app.telegram.starter import LimitReached

# The wizard's buttons: choice, skip, done, field (a setting), back, cancel, generate, yes (confirm).
OPS = frozenset({"wc", "wk", "wd", "wf", "wb", "wx", "wg", "wy"})


class Wizard(StatesGroup):
    """The one state of a conversation that is inside a wizard."""

    active = State()


def new_wizard(
    model: Model, values: dict[str, Any] | None = None, queue: list[str] | None = None
) -> dict[str, Any]:
    """A wizard for ``model``: ``queue`` are the fields still to ask (default: the required ones)."""
    return {
        "wid": secrets.token_hex(3),
        "model": model.id,
        "values": dict(values or {}),
        "queue": list(model.required if queue is None else queue),
        "asked": [],
        "field": None,
        "phase": "required",
        "collected": [],
    }


async def begin(
    message: Message, state: FSMContext, ctx: BotContext, lang: str, wizard: dict[str, Any]
) -> None:
    """Enter the wizard and ask its first question."""
    await state.set_state(Wizard.active)
    await _advance(message, state, ctx, lang, wizard)


async def _save(state: FSMContext, wizard: dict[str, Any]) -> None:
    await state.update_data(wizard=wizard)


async def _advance(
    message: Message, state: FSMContext, ctx: BotContext, lang: str, wizard: dict[str, Any]
) -> None:
    """Ask the next required field, or show the settings screen when none is left."""
    model = ctx.catalog.get(wizard["model"])
    if wizard["phase"] == "required" and wizard["queue"]:
        wizard["field"] = wizard["queue"].pop(0)
        wizard["collected"] = []
        await _save(state, wizard)
        await _ask(message, lang, wizard, model.fields[wizard["field"]], optional=False)
        return
    wizard["phase"], wizard["field"] = "settings", None
    await _save(state, wizard)
    await show_settings(message, lang, ctx, wizard)


async def _ask(
    message: Message, lang: str, wizard: dict[str, Any], spec: FieldSpec, *, optional: bool
) -> None:
    asked = question(spec, collected=len(wizard["collected"]))
    collecting = spec.type == "url_list" and media_kind(spec) == "image"
    markup = keyboards.question(
        lang, wizard["wid"], spec.name, asked.choices, optional=optional, done=collecting
    )
    await message.answer(t(lang, asked.key, **asked.values), reply_markup=markup)


def _optional_fields(model: Model) -> list[FieldSpec]:
    return [spec for spec in model.fields.values() if not spec.required]


def _value_of(spec: FieldSpec, values: dict[str, Any]) -> Any:
    if spec.name in values:
        return values[spec.name]
    return spec.default_value() if spec.has_default else None


def summary(model: Model, values: dict[str, Any]) -> str:
    """One line per field that has a value (given or default)."""
    lines = []
    for spec in model.fields.values():
        value = _value_of(spec, values)
        if value is not None:
            lines.append(f"{spec.name}: {shown(spec, value)}")
    return "\n".join(lines)


async def show_settings(message: Message, lang: str, ctx: BotContext, wizard: dict[str, Any]) -> None:
    """The optional fields with their values, and Generate."""
    model = ctx.catalog.get(wizard["model"])
    entries = []
    for index, spec in enumerate(model.fields.values()):
        if not spec.required:
            value = _value_of(spec, wizard["values"])
            entries.append((index, f"{spec.name}: {shown(spec, value) if value is not None else '-'}"))
    text = t(lang, "settings", title=model.title, summary=summary(model, wizard["values"]))
    await message.answer(text, reply_markup=keyboards.settings(lang, wizard["wid"], entries))


async def answer_message(message: Message, state: FSMContext, ctx: BotContext, bot: Bot, lang: str) -> None:
    """A message while the wizard waits for a field: the answer to it, or what is expected."""
    wizard = (await state.get_data()).get("wizard")
    if not wizard or not wizard.get("field"):
        await message.answer(t(lang, "wrong.choice", field="-"), reply_markup=keyboards.main_menu(lang))
        return
    model = ctx.catalog.get(wizard["model"])
    spec = model.fields[wizard["field"]]
    optional = wizard["phase"] != "required"
    kind = media_kind(spec)
    try:
        if kind is not None:
            url = await store_media(message, bot, ctx, kind)
            if spec.type == "url_list":
                wizard["collected"].append(url)
                if len(wizard["collected"]) < (spec.max_items or 10) and kind == "image":
                    await _save(state, wizard)
                    await _ask(message, lang, wizard, spec, optional=optional)
                    return
                value: Any = list(wizard["collected"])
            else:
                value = url
        elif message.text is None:
            asked = question(spec)
            raise WrongAnswer("wrong.text", expected=t(lang, asked.key, **asked.values))
        else:
            value = parse_text(spec, message.text)
    except WrongAnswer as wrong:
        await message.answer(t(lang, wrong.key, **wrong.values))
        await _ask(message, lang, wizard, spec, optional=optional)
        return
    except MediaRejected as rejected:
        await message.answer(t(lang, rejected.key, **rejected.values))
        await _ask(message, lang, wizard, spec, optional=optional)
        return
    await _set(message, state, ctx, lang, wizard, spec, value)


async def _set(
    message: Message,
    state: FSMContext,
    ctx: BotContext,
    lang: str,
    wizard: dict[str, Any],
    spec: FieldSpec,
    value: Any,
) -> None:
    wizard["values"][spec.name] = value
    if wizard["phase"] == "required":
        wizard["asked"].append(spec.name)
    wizard["field"], wizard["collected"] = None, []
    await _advance(message, state, ctx, lang, wizard)


async def on_button(query: CallbackQuery, state: FSMContext, ctx: BotContext, bot: Bot, lang: str) -> bool:
    """A wizard button (``w<op>:<wid>[:<arg>]``); False when it is not this wizard's (expired)."""
    op, _, rest = (query.data or "").partition(":")
    wid, _, arg = rest.partition(":")
    wizard = (await state.get_data()).get("wizard")
    message = query.message
    if not wizard or wizard.get("wid") != wid or not isinstance(message, Message):
        return False
    # Answered once handled: a button that is not (False) gets the "expired" answer instead, and a
    # query can be answered only once.
    model = ctx.catalog.get(wizard["model"])
    field = wizard.get("field")
    spec = model.fields[field] if field else None
    if op in ("wc", "wk", "wd"):
        # These name the question they belong to: one of an earlier question is expired.
        key, _, arg = arg.partition(":")
        if spec is None or key != keyboards.field_key(spec.name):
            return False
    if op == "wx":  # cancel
        await state.set_state(None)
        await state.update_data(wizard=None)
        await message.answer(t(lang, "canceled"), reply_markup=keyboards.main_menu(lang))
    elif op == "wc" and spec is not None:  # a choice button
        try:
            value = parse_choice(spec, int(arg))
        except (WrongAnswer, ValueError):
            return False
        await _set(message, state, ctx, lang, wizard, spec, value)
    elif op == "wk" and spec is not None and not spec.required:  # skip an optional field
        wizard["values"].pop(spec.name, None)
        wizard["field"] = None
        await _advance(message, state, ctx, lang, wizard)
    elif op == "wd" and spec is not None and wizard["collected"]:  # done collecting images
        await _set(message, state, ctx, lang, wizard, spec, list(wizard["collected"]))
    elif op == "wd" and spec is not None:  # Done before any image: what is expected, same question
        asked = question(spec)
        expected = t(lang, asked.key, **asked.values)
        await message.answer(t(lang, "wrong.media", field=spec.name, expected=expected))
        await _ask(message, lang, wizard, spec, optional=wizard["phase"] != "required")
    elif op == "wf" and wizard["phase"] == "settings":  # open a setting
        specs = list(model.fields.values())
        if not arg.isdigit() or int(arg) >= len(specs) or specs[int(arg)].required:
            return False
        chosen = specs[int(arg)]
        wizard["field"], wizard["collected"] = chosen.name, []
        await _save(state, wizard)
        await _ask(message, lang, wizard, chosen, optional=True)
    elif op == "wb":  # back
        await _back(message, state, ctx, lang, wizard, model)
    elif op == "wg":  # generate: check everything, then confirm
        try:
            ctx.catalog.validate(model.id, wizard["values"])
        except InvalidInputError as exc:
            await message.answer(t(lang, "invalid", message=f"{exc.field}: {exc.reason}"))
            await show_settings(message, lang, ctx, wizard)
            await query.answer()
            return True
        wizard["phase"] = "confirm"
        await _save(state, wizard)
        text = t(lang, "confirm", title=model.title, summary=summary(model, wizard["values"]))
        await message.answer(text, reply_markup=keyboards.confirm(lang, wizard["wid"]))
    elif op == "wy" and wizard["phase"] == "confirm":  # confirmed: start
        await _start(query, message, state, ctx, bot, lang, wizard, model)
    else:
        return False
    await query.answer()
    return True


async def _back(
    message: Message, state: FSMContext, ctx: BotContext, lang: str, wizard: dict[str, Any], model: Model
) -> None:
    phase = wizard["phase"]
    if phase == "confirm" or (phase == "settings" and wizard.get("field")):
        wizard["phase"], wizard["field"] = "settings", None
        await _save(state, wizard)
        await show_settings(message, lang, ctx, wizard)
        return
    # Back to the previous required field (the current one, if any, goes back on the queue).
    if wizard.get("field") and phase == "required":
        wizard["queue"].insert(0, wizard["field"])
    wizard["field"], wizard["phase"] = None, "required"
    if wizard["asked"]:
        previous = wizard["asked"].pop()
        wizard["values"].pop(previous, None)
        wizard["queue"].insert(0, previous)
        await _advance(message, state, ctx, lang, wizard)
        return
    from app.telegram.menus import show_card  # the card is the menus' own screen

    await state.set_state(None)
    await state.update_data(wizard=None)
    await show_card(message, ctx, lang, ctx.models.index(model))


async def _start(
    query: CallbackQuery,
    message: Message,
    state: FSMContext,
    ctx: BotContext,
    bot: Bot,
    lang: str,
    wizard: dict[str, Any],
    model: Model,
) -> None:
    user = query.from_user
    try:
        await ctx.starter.check_limits(user.id, lang)
        await ctx.starter.start(
            bot,
            chat_id=message.chat.id,
            user_id=user.id,
            model=model,
            input=wizard["values"],
            # The wizard, not the button press: a pressed-twice Confirm is one generation.
            idempotency_key=f"telegram:wizard:{wizard['wid']}",
            lang=lang,
        )
    except LimitReached as exc:
        await message.answer(exc.message)
        return
    except InvalidInputError as exc:
        await message.answer(t(lang, "invalid", message=f"{exc.field}: {exc.reason}"))
        return
    await state.set_state(None)
    await state.update_data(wizard=None)
    await message.answer(t(lang, "started"))
