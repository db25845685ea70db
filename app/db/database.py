"""The asyncpg pool, connected in the background with capped, jittered backoff.

Nothing here blocks startup: :meth:`Database.start` only creates a supervised
task. Readiness is an event others can wait on; health is measured by a real
query with a short timeout and cached for about a second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson

from app.backoff import Backoff
from app.db.embedded import EmbeddedPostgres
from app.db.jsonb import to_jsonb
from app.db.migrations import MigrationError, apply_migrations
from app.health.probes import CachedProbe, ComponentHealth, Status
from app.logs import get_logger
from app.metrics import DATABASE_UP
from app.redaction import describe_error, redact_url

log = get_logger(__name__)

_PROBE_SQL = "SELECT 1"
_PROBE_TIMEOUT_S = 1.0
_PROBE_CACHE_S = 1.0
_POOL_CLOSE_TIMEOUT_S = 2.0


class DatabaseUnavailable(ConnectionError):
    """The database is not connected right now (still starting, or reconnecting)."""


class Database:
    """Owns the connection pool (and the embedded server when there is no DATABASE_URL)."""

    def __init__(
        self,
        dsn: str | None,
        *,
        embedded: EmbeddedPostgres | None = None,
        pool_max_size: int = 10,
        connect_timeout: float = 5.0,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        if dsn is None and embedded is None:
            raise ValueError("either a DSN or an embedded server is needed")
        self._dsn = dsn
        self.embedded = embedded
        self._pool_max_size = pool_max_size
        self._connect_timeout = connect_timeout
        self.on_fatal = on_fatal
        self.pool: asyncpg.Pool | None = None
        self.ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._probe = CachedProbe(
            self._measure,
            ttl_s=_PROBE_CACHE_S,
            timeout_s=_PROBE_TIMEOUT_S,
            details={"kind": self.kind},
            on_change=_health_changed,
        )
        self._on_ready: list[Callable[[asyncpg.Pool], Awaitable[object]]] = []

    @property
    def dsn(self) -> str | None:
        """The DSN in use (known once connected when embedded)."""
        return self._dsn

    @property
    def kind(self) -> str:
        """``embedded`` or ``external``, for logs and health."""
        return "embedded" if self.embedded is not None else "external"

    def require_pool(self) -> asyncpg.Pool:
        """The connection pool; raises :class:`DatabaseUnavailable` while there is none."""
        pool = self.pool
        if pool is None:
            raise DatabaseUnavailable("the database is not connected")
        return pool

    def on_ready(self, callback: Callable[[asyncpg.Pool], Awaitable[object]]) -> None:
        """Run ``callback(pool)`` once connected and migrated, before anyone is told the database is ready.

        A callback that fails counts as a failed connection: the pool is dropped and connecting
        starts again with backoff (it should only read or create small shared values).
        """
        self._on_ready.append(callback)

    def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._connect_forever(), name="database.connect")

    async def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait until connected and migrated; False if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self.ready.wait()
        except TimeoutError:
            return False
        return True

    async def _connect_forever(self) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except MigrationError as exc:
                self._last_error = str(exc)
                log.error("db.migration_failed", error=str(exc))
                if self.on_fatal is not None:
                    self.on_fatal(exc)
                return
            except Exception as exc:  # every failure to connect is retried
                self._last_error = describe_error(exc)
                delay = backoff.next_delay()
                log.warning(
                    "db.connect_failed",
                    database=self.kind,
                    error=self._last_error,
                    attempt=backoff.attempts,
                    retry_in_s=round(delay, 2),
                )
                await asyncio.sleep(delay)
                continue
            self._last_error = None
            self.ready.set()
            return

    async def _connect_once(self) -> None:
        if self.embedded is not None:
            self._dsn = await self.embedded.start()
        assert self._dsn is not None
        started = time.monotonic()
        pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._pool_max_size,
            timeout=self._connect_timeout,
            command_timeout=30,
            max_inactive_connection_lifetime=300,
            init=_init_connection,
            connection_class=PooledConnection,
        )
        try:
            async with pool.acquire(timeout=self._connect_timeout) as conn:
                await apply_migrations(conn)
                server_version = conn.get_settings().server_version
            for callback in self._on_ready:
                await callback(pool)
        except BaseException:
            pool.terminate()
            raise
        self.pool = pool
        latency_ms = round((time.monotonic() - started) * 1000, 1)
        self._probe.record(
            ComponentHealth(
                "up", latency_ms=latency_ms, checked_at=time.monotonic(), details={"kind": self.kind}
            )
        )
        log.info(
            "db.connected",
            database=self.kind,
            url=redact_url(self._dsn),
            server_version=server_version,
            connect_ms=latency_ms,
        )

    async def health(self) -> ComponentHealth:
        """A measured status: a real query with a short timeout, cached for about a second."""
        if self.pool is None:
            # Not connected yet: the connect loop's own outcome is the measurement.
            status: Status = "starting" if self._last_error is None else "down"
            return ComponentHealth(status, last_error=self._last_error, details={"kind": self.kind})
        return await self._probe.health()

    async def _measure(self) -> dict[str, Any] | None:
        async with self.require_pool().acquire() as conn:
            await conn.fetchval(_PROBE_SQL)
        return None

    async def close(self) -> None:
        """Stop connecting, close the pool (bounded), stop the embedded server."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._probe.close()
        if self.pool is not None:
            pool, self.pool = self.pool, None
            try:
                async with asyncio.timeout(_POOL_CLOSE_TIMEOUT_S):
                    await pool.close()
            except (TimeoutError, Exception):
                pool.terminate()
        if self.embedded is not None:
            await self.embedded.stop()


class PooledConnection(asyncpg.Connection):
    """A pooled connection released without a reset round trip.

    Pooled connections never hold session state: advisory locks taken on them are
    transaction-scoped (``pg_advisory_xact_lock``), settings are ``SET LOCAL``, and
    LISTEN and the leader lock live on dedicated connections. Skipping asyncpg's reset
    query saves a round trip on every release.
    """

    def get_reset_query(self) -> str:
        return ""


async def _init_connection(conn: asyncpg.Connection) -> None:
    """jsonb columns come back as Python objects; text we already encoded passes through as is."""
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: value if isinstance(value, str) else to_jsonb(value),
        decoder=orjson.loads,
        format="text",
    )


def _health_changed(health: ComponentHealth) -> None:
    DATABASE_UP.set(1 if health.status == "up" else 0)
    log.info("db.health_changed", status=health.status, error=health.last_error)
