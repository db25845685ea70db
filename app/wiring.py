"""The composition root: every part of the service is built here, its leader work registered, and
its start and stop written side by side.

``app.web.application`` imports this module in a worker thread once the port is open, then calls
:func:`start`. Each part's lifecycle is an async context manager (setup before ``yield``, teardown
after), entered in order and closed in reverse at application cleanup, after HTTP has drained.
Singleton work (the submitter, the poller, and every later "exactly once" worker) is declared with
``leader.run_when_active`` in :func:`build_runtime`, so it runs only on the active instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from app.api_keys import load_or_create_api_key
from app.callbacks.applier import CallbackApplier
from app.callbacks.intake import CallbackIntake
from app.callbacks.maintenance import CallbackMaintenance
from app.callbacks.spool import CallbackSpool
from app.callbacks.tokens import callback_secret
from app.config import Settings
from app.db.database import Database
from app.db.embedded import EmbeddedPostgres
from app.db.generations import CREATED_CHANNEL, DUE_CHANNEL, EVENTS_CHANNEL
from app.db.notifications import Notifications
from app.db.settings import SharedSecret
from app.db.webhooks import EVENTS_CHANNEL as WEBHOOK_EVENTS_CHANNEL
from app.generations.events import EventHub
from app.generations.poller import Poller
from app.generations.service import GenerationService
from app.generations.submitter import Submitter
from app.health.kie import KieProbe
from app.health.storage import StoreProbe
from app.kie.catalog import Catalog
from app.kie.catalog_loader import default_catalog
from app.kie.client import KieClient
from app.leader import Leader
from app.logs import get_logger
from app.redaction import redact_url
from app.runtime import Runtime
from app.storage.files import StoredFiles
from app.storage.mirror import Mirror
from app.storage.parts import FileStorage
from app.storage.signing import FILE_LINK_SECRET, FileLinks
from app.storage.stores import local_root, open_store
from app.storage.uploads import Uploads
from app.supervision import supervise
from app.web.routes import lazy_handlers
from app.webhooks.delivery import WebhookDelivery
from app.webhooks.secrets import WebhookSecrets

if TYPE_CHECKING:
    from app.web.keys import RuntimeSlot

log = get_logger(__name__)

# Until the built-in simulator is up, an address where nothing listens: a request fails to connect
# (safely retried) rather than ever reaching the real KIE without a key.
_NOWHERE = "http://127.0.0.1:9"


async def start(slot: RuntimeSlot, configure: Callable[[Runtime], None] | None = None) -> Runtime:
    """Build the runtime, start its parts in order, and publish it (and the routes' handlers)."""
    runtime = build_runtime(slot.settings, fail=slot.fail)
    if configure is not None:
        configure(runtime)
    handlers = lazy_handlers()
    for lifecycle in _LIFECYCLES:
        await slot.resources.enter_async_context(contextlib.asynccontextmanager(lifecycle)(runtime))
    slot.fill(runtime, handlers)
    # Everything built so far lives as long as the process: keep it out of the collector's reach,
    # so full collections under load stay short.
    gc.collect()
    gc.freeze()
    log.info("server.wired", instance=runtime.instance)
    return runtime


def build_runtime(
    settings: Settings, *, fail: Callable[[BaseException], None], catalog: Catalog | None = None
) -> Runtime:
    """Every part of one instance, connected; nothing is started yet. Call inside the event loop."""
    database = make_database(settings)
    database.on_fatal = fail
    direct_dsn = direct_dsn_provider(settings, database)
    notifications = Notifications(
        direct_dsn, (EVENTS_CHANNEL, CREATED_CHANNEL, DUE_CHANNEL, WEBHOOK_EVENTS_CHANNEL)
    )
    secret = callback_secret(settings.kie_callback_secret)
    applier = CallbackApplier(database)
    intake = CallbackIntake(
        database,
        CallbackSpool(settings.data_dir / "spool"),
        applier,
        secret,
        hmac_key=settings.kie_webhook_hmac_key,
    )
    catalog = catalog or default_catalog()
    kie = KieClient(
        _NOWHERE if settings.kie_simulated else settings.kie_base_url,
        settings.kie_api_key or "simulator",
        create_limit=(settings.kie_create_limit, settings.kie_create_window_s),
        status_limit=(settings.kie_status_rps, 1.0),
    )
    leader = Leader(
        name=settings.leader_lock_name,
        instance=settings.instance_id,
        dsn_provider=direct_dsn,
        pool_getter=database.require_pool,
        lease_s=settings.leader_lease_s,
        connect_timeout=settings.db_connect_timeout_s,
    )
    poller = Poller(database=database, client=kie, applier=applier, notifications=notifications)
    submitter = Submitter(
        client=kie,
        catalog=catalog,
        applier=applier,
        secret=secret,
        notifications=notifications,
        database=database,
        public_base_url=settings.public_base_url,
        first_check_in=poller.first_check_in,
    )
    storage = _storage(settings, database, kie, notifications)
    generations = GenerationService(
        database, catalog, notifications, default_timeout_s=settings.generation_timeout_s
    )
    leader.run_when_active("submitter", submitter.run)
    leader.run_when_active("poller", poller.run)
    leader.run_when_active("mirror", storage.mirror.run)
    webhook_secrets = WebhookSecrets(database, settings.webhooks.secret)
    webhooks = WebhookDelivery(
        database=database,
        generations=generations,
        notifications=notifications,
        secrets=webhook_secrets,
        links=storage.links,
        settings=settings.webhooks,
    )
    leader.run_when_active("webhooks", webhooks.run)
    telegram = None
    if settings.telegram.enabled:
        # Imported here: aiogram is a large import, and only a configured bot needs it.
        from app.telegram.assembly import build_telegram

        telegram = build_telegram(settings, database, notifications, generations, catalog, storage, kie)
        leader.run_when_active("telegram_transport", telegram.transport.run)
        leader.run_when_active("telegram_delivery", telegram.delivery.run)
    return Runtime(
        settings=settings,
        database=database,
        leader=leader,
        notifications=notifications,
        callback_intake=intake,
        callback_applier=applier,
        callback_maintenance=CallbackMaintenance(database, intake, applier, secret),
        callback_secret=secret,
        generations=generations,
        kie=kie,
        kie_probe=KieProbe(kie, "simulator" if settings.kie_simulated else "live"),
        storage=storage,
        api_keys=settings.api_keys,
        fail=fail,
        events=EventHub(notifications, generations),
        webhook_secrets=webhook_secrets,
        webhook_delivery=webhooks,
        telegram=telegram,
    )


def _storage(
    settings: Settings, database: Database, kie: KieClient, notifications: Notifications | None
) -> FileStorage:
    store = open_store(settings.storage, settings.data_dir)
    file_secret = SharedSecret(FILE_LINK_SECRET, None)
    database.on_ready(file_secret.load)  # every instance signs and checks links with the same secret
    links = FileLinks(settings.public_base_url, file_secret, settings.file_url_ttl_s)
    return FileStorage(
        store=store,
        links=links,
        files=StoredFiles(database),
        uploads=Uploads(database, store, links),
        mirror=Mirror(
            database=database,
            store=store,
            links=kie,
            notifications=notifications,
            max_bytes=settings.mirror_max_bytes,
            connect_timeout_s=min(10.0, settings.mirror_timeout_s),
            read_timeout_s=settings.mirror_timeout_s,
        ),
        probe=StoreProbe(store, settings.storage, str(local_root(settings.data_dir))),
    )


def make_database(settings: Settings) -> Database:
    """The external database named by DATABASE_URL, or an embedded one under DATA_DIR."""
    embedded = EmbeddedPostgres(settings.data_dir) if settings.database_url is None else None
    return Database(
        settings.database_url,
        embedded=embedded,
        pool_max_size=settings.db_pool_max_size,
        connect_timeout=settings.db_connect_timeout_s,
    )


def direct_dsn_provider(settings: Settings, database: Database) -> Callable[[], Awaitable[str]]:
    """LOCK_DATABASE_URL, else the database's own DSN, once the schema is migrated.

    Session state (the leader lock, LISTEN) needs a direct connection, never a pooled one.
    """

    async def direct_dsn() -> str:
        while not await database.wait_ready(timeout=30):
            log.info("db.waiting_for_database")
        dsn = settings.lock_database_url or database.dsn
        assert dsn is not None
        return dsn

    return direct_dsn


# --- lifecycles, in start order (stopped in reverse) -------------------------------------------


async def _api_keys(runtime: Runtime) -> AsyncIterator[None]:
    if not runtime.api_keys:
        path = runtime.settings.data_dir / "api_key"
        try:
            key, created = await asyncio.to_thread(load_or_create_api_key, path)
        except OSError as exc:
            # DATA_DIR is unusable (storage shows down): a key for this run only, still shown once.
            key, created = "kg_" + secrets.token_urlsafe(32), True
            log.warning("api.key_file_failed", error=str(exc))
        runtime.api_keys = (key,)
        if created:
            # Shown once, on stdout, never in the log stream: it is a secret.
            print(f"KIE Gateway: no API_KEYS configured; generated an API key for /api/: {key}", flush=True)
        log.info("api.key_file", path=str(path), generated=created)
    yield


async def _kie(runtime: Runtime) -> AsyncIterator[None]:
    simulator: asyncio.Task[web.AppRunner] | None = None
    if runtime.settings.kie_simulated:
        # Nothing talks to KIE before the database is up anyway, and a request that comes
        # earlier fails to connect and is retried.
        simulator = asyncio.create_task(_start_simulator(runtime), name="kie.simulator")
    else:
        log.info("kie.live", base_url=runtime.kie.base_url)
    await runtime.kie.start()
    try:
        yield
    finally:
        await runtime.kie.close()
        await runtime.kie_probe.close()
        if simulator is not None:
            simulator.cancel()
            results = await asyncio.gather(simulator, return_exceptions=True)
            if isinstance(results[0], web.AppRunner):
                await results[0].cleanup()


async def _start_simulator(runtime: Runtime) -> web.AppRunner:
    # Imported here: only the zero-configuration run needs the simulator's code.
    from app.kie.simulator.inprocess import start_simulator

    runner, base_url = await start_simulator(runtime.settings.simulator_latency_s)
    runtime.kie.base_url = base_url
    log.warning(
        "kie.simulator_in_use",
        message="KIE_API_KEY is not set: generations go to the built-in KIE simulator, not to KIE",
        base_url=base_url,
    )
    return runner


async def _database(runtime: Runtime) -> AsyncIterator[None]:
    database = runtime.database
    if database.embedded is not None:
        log.info("db.using", database="embedded", pgdata=str(database.embedded.pgdata))
    else:
        log.info("db.using", database="external", url=redact_url(database.dsn or ""))
    database.start()  # returns at once; connecting happens in the background
    try:
        yield
    finally:
        await database.close()


async def _file_storage(runtime: Runtime) -> AsyncIterator[None]:
    settings, storage = runtime.settings, runtime.storage
    if not storage.enabled:
        log.warning(
            "storage.disabled",
            message="STORAGE_URL=none: results are not copied and /files/... answers 503",
        )
    elif settings.storage.kind == "local" and settings.on_render:
        log.warning(
            "storage.local_on_render",
            message="results are kept on this instance's disk, which Render erases on every deploy; "
            "set STORAGE_URL to an s3:// bucket",
            path=str(local_root(settings.data_dir)),
        )
    else:
        log.info("storage.using", kind=settings.storage.kind, bucket=settings.storage.bucket)
    try:
        yield
    finally:
        await storage.mirror.close()
        await storage.probe.close()
        if storage.store is not None:
            await storage.store.close()


async def _notifications(runtime: Runtime) -> AsyncIterator[None]:
    runtime.notifications.start()
    try:
        yield
    finally:
        await runtime.notifications.stop()


async def _callbacks(runtime: Runtime) -> AsyncIterator[None]:
    # Stores straight to the database once maintenance has seen it ready; spools until then.
    tasks = [
        asyncio.create_task(
            supervise("callbacks.maintenance", runtime.callback_maintenance.run), name="callbacks.maintenance"
        ),
        asyncio.create_task(
            supervise("callbacks.apply", runtime.callback_applier.run), name="callbacks.apply"
        ),
        # Live followers (WebSocket) on this instance hear of every change, wherever it was made.
        asyncio.create_task(supervise("events.hub", runtime.events.run), name="events.hub"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.callback_intake.stop()
        await runtime.webhook_delivery.close()


async def _telegram(runtime: Runtime) -> AsyncIterator[None]:
    telegram = runtime.telegram
    if telegram is None:
        yield
        return
    # Every instance handles stored updates; only the leader receives and delivers.
    log.info("telegram.enabled", mode=telegram.mode)
    # aiogram logs a line per update at INFO: ours (telegram.*) say what matters.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    telegram.inbox.start()
    task = asyncio.create_task(supervise("telegram.updates", telegram.processor.run), name="telegram.updates")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await telegram.inbox.stop()
        await telegram.probe.close()
        await telegram.bot.session.close()


async def _leader(runtime: Runtime) -> AsyncIterator[None]:
    runtime.leader.start()  # returns at once; the election runs in the background
    try:
        yield
    finally:
        await runtime.leader.release()  # idempotent: serve() already released it before draining


_LIFECYCLES: tuple[Callable[[Runtime], AsyncIterator[None]], ...] = (
    _api_keys,
    _kie,
    _database,
    _file_storage,
    _notifications,
    _callbacks,
    _telegram,
    _leader,
)
