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
from app.telegram.delivery import result_media, send_media, status_text
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
    elif len(media) > 1 and all(kind == "photo" and link is None for kind, _, link in media):
        await bot.send_media_group(chat_id, media=[InputMediaPhoto(media=item) for _, item, _ in media[:10]])  # type: ignore[arg-type]
        await message.answer(t(lang, "status.done", model=generation.model), reply_markup=markup)
    else:
        for index, (kind, item, link) in enumerate(media):
            if link is not None:  # too large to upload: our signed link, in words
                await message.answer(t(lang, "result.link", model=generation.model, url=link))
                continue
            caption = t(lang, "status.done", model=generation.model) if index == 0 else None
            await send_media(bot, chat_id, kind, item, caption, markup if index == 0 else None)
    return True


def _media(ctx: BotContext, generation: Generation) -> list[tuple[str, object, str | None]]:
    try:
        output = ctx.catalog.get(generation.model).output
    except LookupError:
        output = ""
    return result_media(generation, ctx.store, ctx.links, output)
