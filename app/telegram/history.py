"""/history: the user's generations, newest first, paged, each with a button that sends its result
again (from our copies when they exist, else KIE's links)."""

from __future__ import annotations

import uuid

from aiogram import Bot
from aiogram.types import CallbackQuery, InputMediaPhoto, Message

from app.generations.model import Generation
from app.states import State
from app.telegram import keyboards
from app.telegram.context import BotContext
from app.telegram.delivery import StoredInputFile, kind_of_result, send_media, status_text
from app.telegram.i18n import t

PAGE = 5


async def command(message: Message, ctx: BotContext, lang: str) -> None:
    """/history."""
    assert message.from_user is not None
    await show(message, ctx, lang, message.from_user.id, 0)


async def show(message: Message, ctx: BotContext, lang: str, user_id: int, page: int) -> None:
    """One page of the user's generations."""
    found = await ctx.generations.list(owner=f"telegram:{user_id}", limit=PAGE * (page + 1) + 1)
    shown = found[page * PAGE : (page + 1) * PAGE]
    if not shown:
        await message.answer(t(lang, "history.empty"), reply_markup=keyboards.main_menu(lang))
        return
    entries = [
        (
            g.id,
            t(
                lang,
                "history.line",
                when=g.created_at.strftime("%m-%d %H:%M"),
                model=g.model,
                state=t(lang, f"state.{g.state.value}"),
            ),
        )
        for g in shown
    ]
    more = len(found) > (page + 1) * PAGE
    await message.answer(
        t(lang, "history.page", page=page + 1), reply_markup=keyboards.history(lang, entries, page, more)
    )


async def resend(
    query: CallbackQuery, message: Message, ctx: BotContext, bot: Bot, lang: str, gid: str
) -> bool:
    """Send a generation's result again (False: not the user's, or not a generation)."""
    try:
        generation_id = uuid.UUID(hex=gid)
    except ValueError:
        return False
    generation = await ctx.generations.get(generation_id, f"telegram:{query.from_user.id}")
    if generation is None:
        return False
    await query.answer()
    chat_id = message.chat.id
    markup = keyboards.result_keyboard(lang, generation.id)
    if generation.state is not State.SUCCEEDED:
        await message.answer(status_text(generation, lang), reply_markup=markup)
        return True
    media = _media(ctx, generation)
    if not media:
        await message.answer(t(lang, "history.gone"))
    elif len(media) > 1 and all(kind == "photo" for kind, _ in media):
        await bot.send_media_group(chat_id, media=[InputMediaPhoto(media=item) for _, item in media[:10]])  # type: ignore[arg-type]
        await message.answer(t(lang, "status.done", model=generation.model), reply_markup=markup)
    else:
        for index, (kind, item) in enumerate(media):
            caption = t(lang, "status.done", model=generation.model) if index == 0 else None
            await send_media(bot, chat_id, kind, item, caption, markup if index == 0 else None)
    return True


def _media(ctx: BotContext, generation: Generation) -> list[tuple[str, object]]:
    output = (
        ctx.catalog.get(generation.model).output if generation.model in {m.id for m in ctx.models} else ""
    )
    files = list(generation.files or [])
    if files and ctx.store is not None:
        return [
            (
                kind_of_result(str(entry.get("content_type") or ""), str(entry["name"]), output),
                StoredInputFile(ctx.store, f"{generation.id}/{entry['name']}", str(entry["name"])),
            )
            for entry in files
        ]
    return [(kind_of_result(None, url, output), url) for url in generation.result_urls or []]
