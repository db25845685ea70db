"""The aiohttp application: routes, startup order and shutdown.

Startup order is the point of this module: the port is bound before anything
slow happens; the database connects in the background afterwards. Shutdown
runs in the reverse order and is bounded by a watchdog.
"""

from __future__ import annotations

import asyncio
import gc
import os
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from app.config import Settings
from app.db.database import Database
from app.db.embedded import EmbeddedPostgres
from app.db.generations import CREATED_CHANNEL, DUE_CHANNEL, EVENTS_CHANNEL
from app.db.notifications import Notifications
from app.kie.catalog import Catalog, default_catalog
from app.kie.client import KieClient
from app.leader import Leader
from app.logs import get_logger
from app.redaction import redact_url
from app.runtime import Runtime
from app.services.api_key_file import load_or_create_api_key
from app.services.callback_intake import CallbackIntake
from app.services.callback_spool import CallbackSpool
from app.services.generation_service import GenerationService
from app.services.kie_health import KieHealth
from app.services.poller import Poller
from app.services.storage_probe import StorageProbe
from app.services.submitter import Submitter
from app.web import callbacks, generations, health, prometheus
from app.web.keys import RUNTIME
from app.web.middleware import request_context

log = get_logger(__name__)

CLIENT_MAX_SIZE = 1024**2
# Render gives 30 s between SIGTERM and SIGKILL; we promise to be gone within 10 s.
_EXIT_DEADLINE_S = 9.5


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


def make_leader(settings: Settings, database: Database) -> Leader:
    """The election on a dedicated connection."""
    lock_dsn = direct_dsn_provider(settings, database)
    return Leader(
        name=settings.leader_lock_name,
        instance=settings.instance_id,
        dsn_provider=lock_dsn,
        pool_getter=lambda: database.pool,
        lease_s=settings.leader_lease_s,
        connect_timeout=settings.db_connect_timeout_s,
    )


def build_app(settings: Settings, catalog: Catalog | None = None) -> web.Application:
    """Create the application with every route; call inside a running event loop."""
    app = web.Application(middlewares=[request_context], client_max_size=CLIENT_MAX_SIZE)
    database = make_database(settings)
    intake = CallbackIntake(
        database,
        CallbackSpool(settings.data_dir / "spool"),
        configured_secret=settings.kie_callback_secret,
        hmac_key=settings.kie_webhook_hmac_key,
    )
    catalog = catalog or default_catalog()
    notifications = Notifications(
        direct_dsn_provider(settings, database), (EVENTS_CHANNEL, CREATED_CHANNEL, DUE_CHANNEL)
    )
    kie = KieClient(
        # Until the built-in simulator is up, an address where nothing listens: a request fails
        # to connect (safely retried) rather than ever reaching the real KIE without a key.
        settings.kie_base_url if not settings.kie_simulated else "http://127.0.0.1:9",
        settings.kie_api_key or "simulator",
        create_limit=(settings.kie_create_limit, settings.kie_create_window_s),
        status_limit=(settings.kie_status_rps, 1.0),
    )
    leader = make_leader(settings, database)
    poller = Poller(database=database, client=kie, intake=intake, notifications=notifications)
    submitter = Submitter(
        client=kie,
        catalog=catalog,
        intake=intake,
        notifications=notifications,
        public_base_url=settings.public_base_url,
        first_check_in=poller.first_check_in,
        pool_getter=lambda: database.pool,
    )
    leader.run_when_active("submitter", submitter.run)
    leader.run_when_active("poller", poller.run)
    app[RUNTIME] = Runtime(
        settings=settings,
        database=database,
        leader=leader,
        callbacks=intake,
        storage=StorageProbe(settings.data_dir),
        notifications=notifications,
        generations=GenerationService(
            database, catalog, notifications, default_timeout_s=settings.generation_timeout_s
        ),
        kie=kie,
        kie_health=KieHealth(kie, "simulator" if settings.kie_simulated else "live"),
        api_keys=settings.api_keys,
    )
    app.add_routes(health.routes)
    app.add_routes(prometheus.routes)
    app.add_routes(callbacks.routes)
    app.add_routes(generations.routes)
    app.cleanup_ctx.append(_api_keys_ctx)
    app.cleanup_ctx.append(_kie_ctx)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_notifications_ctx)
    app.cleanup_ctx.append(_callbacks_ctx)
    app.cleanup_ctx.append(_leader_ctx)
    return app


async def _api_keys_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    if not runtime.api_keys:
        try:
            key, created = load_or_create_api_key(runtime.settings.data_dir / "api_key")
        except OSError as exc:
            # DATA_DIR is unusable (storage shows down): a key for this run only, still shown once.
            key, created = "kg_" + secrets.token_urlsafe(32), True
            log.warning("api.key_file_failed", error=str(exc))
        runtime.api_keys = (key,)
        if created:
            # Shown once, on stdout, never in the log stream: it is a secret.
            print(f"KIE Gateway: no API_KEYS configured; generated an API key for /api/: {key}", flush=True)
        log.info("api.key_file", path=str(runtime.settings.data_dir / "api_key"), generated=created)
    yield


async def _kie_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    simulator: asyncio.Task[web.AppRunner] | None = None
    if runtime.settings.kie_simulated:
        # Started after the port is open: nothing talks to KIE before the database is up anyway,
        # and a request that comes earlier fails to connect and is retried.
        simulator = asyncio.create_task(_start_simulator(runtime), name="kie.simulator")
    else:
        log.info("kie.live", base_url=runtime.kie.base_url)
    await runtime.kie.start()
    yield
    await runtime.kie.close()
    if simulator is not None:
        simulator.cancel()
        results = await asyncio.gather(simulator, return_exceptions=True)
        if isinstance(results[0], web.AppRunner):
            await results[0].cleanup()


async def _start_simulator(runtime: Runtime) -> web.AppRunner:
    # Imported here: only the zero-configuration run needs the simulator's code.
    from app.services.simulator_runner import start_simulator

    runner, base_url = await start_simulator(runtime.settings.simulator_latency_s)
    runtime.kie.base_url = base_url
    log.warning(
        "kie.simulator_in_use",
        message="KIE_API_KEY is not set: generations go to the built-in KIE simulator, not to KIE",
        base_url=base_url,
    )
    return runner


async def _notifications_ctx(app: web.Application) -> AsyncIterator[None]:
    notifications = app[RUNTIME].notifications
    notifications.start()
    yield
    await notifications.stop()


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    runtime = app[RUNTIME]
    database = runtime.database
    if database.embedded is not None:
        log.info("db.using", database="embedded", pgdata=str(database.embedded.pgdata))
    else:
        log.info("db.using", database="external", url=redact_url(database.dsn or ""))
    database.start()  # returns at once; connecting happens in the background
    yield
    await database.close()


async def _callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    intake = app[RUNTIME].callbacks
    intake.start()  # stores straight to the database once it is ready; spools until then
    yield
    await intake.stop()


async def _leader_ctx(app: web.Application) -> AsyncIterator[None]:
    leader = app[RUNTIME].leader
    leader.start()  # returns at once; the election runs in the background
    yield
    await leader.release()  # idempotent: serve() already released it before draining


async def serve(settings: Settings, configure: Callable[[web.Application], None] | None = None) -> int:
    """Run the service until SIGTERM/SIGINT or a fatal error; return the exit code.

    ``configure`` may add routes or singleton work to the app before it starts.
    """
    loop = asyncio.get_running_loop()
    app = build_app(settings)
    if configure is not None:
        configure(app)
    runtime = app[RUNTIME]
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        log.error("server.bind_failed", host=settings.host, port=settings.port, error=str(exc))
        await runner.cleanup()
        return 1
    log.info(
        "server.listening",
        host=settings.host,
        port=settings.port,
        instance=runtime.instance,
        version=runtime.version,
        pid=os.getpid(),
    )

    # Everything imported and built so far lives as long as the process: keep it out of the
    # collector's reach, so full collections under load stay short.
    gc.collect()
    gc.freeze()

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, stop, signum)
    stop_waiter = asyncio.create_task(stop.wait(), name="server.wait_stop")
    await asyncio.wait({stop_waiter, runtime.fatal}, return_when=asyncio.FIRST_COMPLETED)
    stop_waiter.cancel()

    exit_code = 0
    if runtime.fatal.done():
        exit_code = 1
        log.error("server.fatal", error=str(runtime.fatal.result()))
    # A last resort: whatever hangs during shutdown, the process is gone before the deadline.
    watchdog = loop.call_later(_EXIT_DEADLINE_S, _force_exit)
    log.info("server.stopping", exit_code=exit_code)
    # Hand leadership over first, so a peer takes over while we drain our requests.
    await runtime.leader.release()
    await runner.cleanup()
    watchdog.cancel()
    log.info("server.stopped", exit_code=exit_code)
    return exit_code


def _on_signal(stop: asyncio.Event, signum: int) -> None:
    if stop.is_set():
        log.warning("server.signal_again", signal=signal.Signals(signum).name)
        return
    log.info("server.signal", signal=signal.Signals(signum).name)
    stop.set()


def _force_exit() -> None:
    log.error("server.shutdown_overran", deadline_s=_EXIT_DEADLINE_S)
    os._exit(1)
