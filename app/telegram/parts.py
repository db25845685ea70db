"""What the bot is made of, in one instance (built by ``app.wiring``)."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot, Dispatcher

from app.health.telegram import TelegramProbe
from app.telegram.delivery import ResultDelivery
from app.telegram.inbox import UpdateInbox
from app.telegram.processor import UpdateProcessor
from app.telegram.transport import Transport


@dataclass
class TelegramBot:
    """The bot's parts: the inbox every instance writes, the processor every instance runs, and
    the leader's transport and delivery."""

    bot: Bot
    dispatcher: Dispatcher
    inbox: UpdateInbox
    processor: UpdateProcessor
    transport: Transport
    delivery: ResultDelivery
    probe: TelegramProbe
    webhook_secret: str
    mode: str
