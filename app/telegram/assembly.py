"""Builds the bot's parts (called by ``app.wiring`` only when ``TELEGRAM_BOT_TOKEN`` is set)."""

from __future__ import annotations

from aiogram import Dispatcher

from app.config import Settings
from app.db.database import Database
from app.db.notifications import Notifications
from app.generations.service import GenerationService
from app.health.telegram import TelegramProbe
from app.kie.catalog import Catalog
from app.kie.client import KieClient
from app.storage.parts import FileStorage
from app.telegram.access import AccessAndLanguage, make_admin_router
from app.telegram.bot import make_bot, webhook_secret
from app.telegram.commands import make_router as make_commands_router
from app.telegram.context import BotContext
from app.telegram.conversations import AdvisoryLockIsolation, PostgresStorage
from app.telegram.delivery import ResultDelivery
from app.telegram.inbox import UpdateInbox
from app.telegram.menus import make_router as make_menus_router
from app.telegram.parts import TelegramBot
from app.telegram.processor import UpdateProcessor
from app.telegram.starter import GenerationStarter
from app.telegram.transport import Transport


def build_telegram(
    settings: Settings,
    database: Database,
    notifications: Notifications,
    generations: GenerationService,
    catalog: Catalog,
    storage: FileStorage,
    kie: KieClient | None = None,
) -> TelegramBot:
    """Every part of the bot, connected; nothing is started."""
    config = settings.telegram
    bot = make_bot(config)
    dispatcher = Dispatcher(
        storage=PostgresStorage(database), events_isolation=AdvisoryLockIsolation(database)
    )
    starter = GenerationStarter(database, generations, catalog, config)
    ctx = BotContext(
        settings=config,
        database=database,
        catalog=catalog,
        generations=generations,
        starter=starter,
        uploads=storage.uploads,
        links=storage.links,
        store=storage.store,
        kie=kie,
    )
    access = AccessAndLanguage(ctx)
    dispatcher.message.outer_middleware(access)
    dispatcher.callback_query.outer_middleware(access)
    dispatcher.include_router(make_admin_router(config.admin_ids))
    dispatcher.include_router(make_commands_router())
    dispatcher.include_router(make_menus_router())
    dispatcher["ctx"] = ctx
    inbox = UpdateInbox(database)
    mode = config.resolved_mode(settings.public_base_url)
    secret = webhook_secret(config)
    transport = Transport(
        bot, database, inbox, mode=mode, public_base_url=settings.public_base_url, secret=secret
    )
    return TelegramBot(
        bot=bot,
        dispatcher=dispatcher,
        inbox=inbox,
        processor=UpdateProcessor(
            database,
            dispatcher,
            bot,
            inbox,
            settings.instance_id,
            # A handler holds one connection for its chat's lock (which also answers its reads) and
            # now and then takes a second for a write: with four left over, handlers never wait on
            # each other for the pool, and the webhook's writers and the leader's loops get theirs.
            concurrency=max(1, settings.db_pool_max_size - 4),
        ),
        transport=transport,
        delivery=ResultDelivery(
            bot=bot,
            database=database,
            generations=generations,
            notifications=notifications,
            store=storage.store,
            links=storage.links,
        ),
        probe=TelegramProbe(bot, transport.state),
        webhook_secret=secret,
        mode=mode,
    )
