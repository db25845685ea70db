"""Who may use the bot, in which language, and the admins' commands.

An outer middleware on messages and button presses: with ``TELEGRAM_ALLOWED_USERS`` set, everyone
else gets a polite refusal and nothing runs (every generation spends the operator's KIE credits);
everyone else's handlers get ``lang`` (the one chosen with /language, else from Telegram's
``language_code``). Admins (``TELEGRAM_ADMIN_IDS``) get /stats and /user <id>.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, TelegramObject, User

from app.db import generation_stats, telegram_deliveries, telegram_updates
from app.telegram.context import BotContext
from app.telegram.i18n import language_for, t

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


def allowed(user: User, allowlist: tuple[str, ...]) -> bool:
    """True when there is no allowlist, or the user is on it (by id or @username)."""
    if not allowlist:
        return True
    return str(user.id) in allowlist or (
        user.username is not None and f"@{user.username.lower()}" in allowlist
    )


class AccessAndLanguage(BaseMiddleware):
    """Refuses users not on the allowlist; gives every handler ``lang``."""

    def __init__(self, ctx: BotContext) -> None:
        self._ctx = ctx

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user: User | None = data.get("event_from_user")
        if user is None:
            return await handler(event, data)
        state: FSMContext | None = data.get("state")
        chosen = (await state.get_data()).get("lang") if state is not None else None
        lang = chosen or language_for(user.language_code)
        if not allowed(user, self._ctx.settings.allowed_users):
            if isinstance(event, (CallbackQuery, Message)):
                await event.answer(t(lang, "access.denied"))
            return None
        data["lang"] = lang
        return await handler(event, data)


async def stats(message: Message, ctx: BotContext, lang: str) -> None:
    """/stats (admins): generations today and in 7 days, by state and model; users; credits; queues."""
    pool = ctx.database.require_pool()
    now = dt.datetime.now(dt.UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week = now - dt.timedelta(days=7)
    today = await generation_stats.by_state_since(pool, midnight)
    seven = await generation_stats.by_state_since(pool, week)
    models = await generation_stats.by_model_since(pool, week)
    users = await generation_stats.owners_since(pool, week, "telegram:")
    depth, _ = await telegram_updates.depth(pool)
    outbox = await telegram_deliveries.counts(pool)
    credits: Any = "?"
    if ctx.kie is not None:
        try:
            credits = await ctx.kie.credits()
        except Exception as exc:  # shown, not raised: the rest of the figures still help
            credits = f"unavailable ({type(exc).__name__})"
    text = t(
        lang,
        "stats",
        today=_counts(today),
        week=_counts(seven),
        models=", ".join(f"{m} {n}" for m, n in models) or "-",
        users=users,
        credits=credits,
        inbox=depth,
        outbox=outbox.get("waiting", 0) + outbox.get("sending", 0),
    )
    await message.answer(text)


async def user(message: Message, command: CommandObject, ctx: BotContext, lang: str) -> None:
    """/user <id> (admins): that user's recent generations."""
    arg = (command.args or "").strip()
    if not arg.isdigit():
        await message.answer(t(lang, "usage.user"))
        return
    found = await ctx.generations.list(owner=f"telegram:{arg}", limit=10)
    if not found:
        await message.answer(t(lang, "user.none", user=arg))
        return
    lines = [
        t(
            lang,
            "user.line",
            when=g.created_at.strftime("%m-%d %H:%M"),
            model=g.model,
            state=g.state.value,
            error=g.error or "",
        )
        for g in found
    ]
    await message.answer("\n".join(lines))


def _counts(by_state: dict[str, int]) -> str:
    total = sum(by_state.values())
    return f"{total} (" + ", ".join(f"{k} {v}" for k, v in sorted(by_state.items())) + ")" if total else "0"


def make_admin_router(admin_ids: tuple[int, ...]) -> Router:
    """/stats and /user for admins only (others never reach them: the commands fall through)."""
    router = Router(name="admin")

    async def from_an_admin(message: Message) -> bool:
        # A coroutine: aiogram runs a plain function filter in a worker thread, for every message.
        return message.from_user is not None and message.from_user.id in admin_ids

    router.message.filter(from_an_admin)
    router.message.register(stats, Command("stats"))
    router.message.register(user, Command("user"))
    return router
