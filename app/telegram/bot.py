"""The aiogram ``Bot`` for our token and API base, and the webhook secret every instance agrees on."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import NextRequestMiddlewareType
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import TelegramMethod

from app.config import TelegramSettings
from app.metrics import TELEGRAM_API_CALLS

# Bounded: a Bot API call that hangs must not hold a worker or the leader's sender forever.
_REQUEST_TIMEOUT_S = 30.0
WEBHOOK_PATH = "/telegram/webhook"


def make_bot(settings: TelegramSettings) -> Bot:
    """A bot talking to ``TELEGRAM_API_BASE`` (``{base}/bot{token}/{method}``, files under ``/file``)."""
    assert settings.token is not None
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.api_base), timeout=_REQUEST_TIMEOUT_S)
    session.middleware(_count_calls)
    return Bot(settings.token, session=session)


async def _count_calls(
    make_request: NextRequestMiddlewareType[Any], bot: Bot, method: TelegramMethod[Any]
) -> Any:
    """``telegram_api_calls_total{method,status}``: ``ok`` or the error's class."""
    name = type(method).__name__
    try:
        response = await make_request(bot, method)
    except TelegramAPIError as exc:
        TELEGRAM_API_CALLS.labels(name, type(exc).__name__).inc()
        raise
    TELEGRAM_API_CALLS.labels(name, "ok").inc()
    return response


def bot_id_of(token: str) -> int:
    """The bot's numeric id: the part of the token before the colon (no request needed)."""
    return int(token.split(":", 1)[0])


def webhook_secret(settings: TelegramSettings) -> str:
    """``TELEGRAM_WEBHOOK_SECRET``, or one derived from the bot token, the same on every instance.

    Derived with an HMAC so the secret reveals nothing of the token; 43 characters of
    ``A-Za-z0-9_-``, as Telegram's ``secret_token`` allows.
    """
    if settings.webhook_secret is not None:
        return settings.webhook_secret
    assert settings.token is not None
    digest = hmac.new(b"kie-gateway/telegram-webhook", settings.token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
