"""Leader election over a PostgreSQL session advisory lock.

Every instance serves HTTP; only the holder of the lock (role ``active``) runs
the singleton work registered with :meth:`Leader.run_when_active`. The others
(``passive``) wait *inside* ``pg_advisory_lock`` under a short ``lock_timeout``,
so the server hands them the lock the moment it is released or its holder's
session dies: takeover costs milliseconds, not a retry interval.

The lock lives on a dedicated, direct connection (never a pooled one: a
transaction-mode pooler would hand the session, and the lock, to someone
else). Each acquisition bumps an epoch in the ``leadership`` table; singleton
writes go through :meth:`LeaderTerm.fenced`, which rejects a stale epoch.

Trust is bounded: a leader whose keepalive has not succeeded for ``lease_s``
stops acting even before its connection is declared dead, and the server-side
TCP keepalives make sure the lock itself outlives that window.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from app.backoff import Backoff
from app.db.connection import Conn
from app.db.keys import advisory_key
from app.db.leadership import (
    StaleEpochError,
    bump_epoch,
    fenced_transaction,
    keepalive,
    read_leadership,
    set_local_lock_timeout,
    unlock,
    wait_for_lock,
)
from app.logs import get_logger
from app.metrics import LEADER_EPOCH, LEADER_ROLE, LEADER_TRANSITIONS
from app.redaction import describe_error
from app.supervision import supervise

log = get_logger(__name__)

ROLES = ("starting", "passive", "active")
_LOCK_WAIT = "2s"  # one wait inside pg_advisory_lock; the loop around it proves the session alive
_KEEPALIVE_INTERVAL_S = 1.0
_KEEPALIVE_TIMEOUT_S = 1.0
_BUMP_LOCK_WAIT = "15s"
_SINGLETON_STOP_TIMEOUT_S = 2.0
_UNLOCK_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class LeaderTerm:
    """One term of leadership, handed to each singleton task."""

    epoch: int
    since: datetime
    _pool_getter: Callable[[], asyncpg.Pool]  # raises DatabaseUnavailable while there is none
    _name: str
    _on_stale: Callable[[], None] = lambda: None

    @contextlib.asynccontextmanager
    async def fenced(self) -> AsyncIterator[Conn]:
        """A transaction whose writes commit only while this term is current.

        Raises ``StaleEpochError`` when a newer leader exists, and makes this instance step
        down: someone else leads, so nothing here may keep acting.
        """
        pool = self._pool_getter()
        try:
            async with fenced_transaction(pool, self._name, self.epoch) as conn:
                yield conn
        except StaleEpochError:
            self._on_stale()
            raise


SingletonFactory = Callable[[LeaderTerm], Awaitable[None]]


class LockLost(Exception):
    """The lock connection died or the lease expired: stop acting now."""


class Leader:
    """Competes for leadership and runs the singleton work while it holds it."""

    def __init__(
        self,
        *,
        name: str,
        instance: str,
        dsn_provider: Callable[[], Awaitable[str]],
        pool_getter: Callable[[], asyncpg.Pool],
        lease_s: float = 5.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.name = name
        self.instance = instance
        self.lock_key = advisory_key(name)
        self._dsn_provider = dsn_provider
        self._pool_getter = pool_getter
        self.lease_s = lease_s
        self._connect_timeout = connect_timeout
        self._singletons: dict[str, SingletonFactory] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: asyncpg.Connection | None = None
        self._released = False
        self.role = "starting"
        self.term: LeaderTerm | None = None
        self.last_keepalive: float | None = None
        self.last_error: str | None = None
        LEADER_ROLE.state("starting")

    # --- registry -------------------------------------------------------------------------

    def run_when_active(self, name: str, factory: SingletonFactory) -> None:
        """Declare singleton work: ``factory(term)`` runs, supervised, only while we lead."""
        if name in self._singletons:
            raise ValueError(f"singleton {name!r} is registered twice")
        self._singletons[name] = factory

    @property
    def singletons_running(self) -> list[str]:
        """Names of singleton tasks running right now."""
        return sorted(name for name, task in self._running.items() if not task.done())

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Begin competing in the background; returns at once."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="leader")

    async def release(self) -> None:
        """Stop singleton work, unlock and close the lock connection (SIGTERM handover)."""
        self._released = True
        was_active = self.role == "active"
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self._stop_singletons()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            if was_active:
                with contextlib.suppress(Exception):
                    await unlock(conn, self.lock_key, _UNLOCK_TIMEOUT_S)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(_UNLOCK_TIMEOUT_S):
                    await conn.close()
            if not conn.is_closed():
                conn.terminate()
        if was_active:
            log.info("leader.released", lock=self.name, epoch=self.term.epoch if self.term else None)
        self._set_role("starting")

    async def _run(self) -> None:
        backoff = Backoff(base=0.1, cap=3.0)
        while not self._released:
            try:
                conn = await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = describe_error(exc)
                self._set_role("starting")
                delay = backoff.next_delay()
                log.warning("leader.connect_failed", error=self.last_error, retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            self._conn = conn
            try:
                self._set_role("passive")
                await self._acquire(conn)
                await self._lead(conn, lost)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = describe_error(exc)
                if self.role == "active":
                    log.error(
                        "leader.lost",
                        lock=self.name,
                        epoch=self.term.epoch if self.term else None,
                        reason=self.last_error,
                    )
                else:
                    log.warning("leader.session_failed", error=self.last_error)
            finally:
                if not self._released:
                    await self._stop_singletons()
                    self._conn = None
                    conn.terminate()  # frees the lock at once if the server still sees us
                    self._set_role("starting")
            await asyncio.sleep(Backoff(base=0.05, cap=0.2).next_delay())

    async def _connect(self) -> asyncpg.Connection:
        dsn = await self._dsn_provider()
        conn = await asyncpg.connect(
            dsn,
            timeout=self._connect_timeout,
            command_timeout=10,
            server_settings={
                "application_name": f"kie-gateway leader {self.instance}"[:63],
                "lock_timeout": _LOCK_WAIT,
                # The server drops a silent peer's session (and so its lock) only after ~11 s,
                # well past the lease, so an old leader stops acting before a new one starts.
                "tcp_keepalives_idle": "5",
                "tcp_keepalives_interval": "2",
                "tcp_keepalives_count": "3",
            },
        )
        _enable_tcp_keepalive(conn)
        return conn

    async def _acquire(self, conn: asyncpg.Connection) -> None:
        """Wait in pg_advisory_lock until the lock is ours; each lock_timeout proves the session alive."""
        while True:
            try:
                await wait_for_lock(conn, self.lock_key)
                return
            except asyncpg.LockNotAvailableError:
                self.last_keepalive = time.monotonic()
                continue

    async def _lead(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        async with conn.transaction():
            # Fenced writes hold the leadership row briefly; wait for them past the short
            # lock_timeout that paces the election loop.
            await set_local_lock_timeout(conn, _BUMP_LOCK_WAIT)
            epoch, since = await bump_epoch(conn, self.name, self.instance)
        self.term = LeaderTerm(
            epoch=epoch, since=since, _pool_getter=self._pool_getter, _name=self.name, _on_stale=lost.set
        )
        self.last_keepalive = time.monotonic()
        self._set_role("active")
        LEADER_EPOCH.set(epoch)
        log.info("leader.acquired", lock=self.name, epoch=epoch, instance=self.instance)
        for name, factory in self._singletons.items():
            self._running[name] = asyncio.create_task(
                supervise(f"singleton.{name}", _bind(factory, self.term)), name=f"singleton.{name}"
            )
        last_ok = time.monotonic()
        while True:
            if lost.is_set() or conn.is_closed():
                raise LockLost("lock connection closed, or a newer epoch exists")
            try:
                await keepalive(conn, _KEEPALIVE_TIMEOUT_S)
                last_ok = self.last_keepalive = time.monotonic()
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                if lost.is_set() or conn.is_closed():
                    raise LockLost(f"lock connection closed: {describe_error(exc)}") from exc
                log.warning("leader.keepalive_failed", error=describe_error(exc))
            # One keepalive period of margin: we stop acting within the lease, not after it.
            if time.monotonic() - last_ok > self.lease_s - _KEEPALIVE_INTERVAL_S:
                raise LockLost(f"no keepalive for {self.lease_s:.0f}s: lease expired")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_KEEPALIVE_INTERVAL_S):
                    await lost.wait()

    async def _stop_singletons(self) -> None:
        running, self._running = self._running, {}
        for task in running.values():
            task.cancel()
        if running:
            _done, pending = await asyncio.wait(running.values(), timeout=_SINGLETON_STOP_TIMEOUT_S)
            for task in pending:
                log.error("leader.singleton_ignored_cancel", task=task.get_name())
            log.info("leader.singletons_stopped", count=len(running))

    def _set_role(self, role: str) -> None:
        if role == self.role:
            return
        previous, self.role = self.role, role
        LEADER_ROLE.state(role)
        LEADER_TRANSITIONS.labels(from_role=previous, to_role=role).inc()
        if role != "active":
            LEADER_EPOCH.set(0)
        log.info("leader.role_changed", previous=previous, role=role)

    async def describe(self) -> dict[str, object]:
        """What /health/detailed shows under ``leader``: our term and the recorded holder."""
        term = self.term if self.role == "active" else None
        holder: dict[str, object] | None = None
        try:
            async with asyncio.timeout(1.0):
                record = await read_leadership(self._pool_getter(), self.name)
        except Exception:  # not connected, or too slow: the page shows no holder rather than waiting
            record = None
        if record is not None:
            holder = {
                "instance": record.holder,
                "epoch": record.epoch,
                "since": record.acquired_at.isoformat() if record.acquired_at else None,
            }
        return {
            "lock": self.name,
            "epoch": term.epoch if term else None,
            "since": term.since.isoformat() if term else None,
            "keepalive_age_s": (
                round(time.monotonic() - self.last_keepalive, 3) if self.last_keepalive is not None else None
            ),
            "holder": holder,
            "singletons": self.singletons_running,
            "last_error": self.last_error,
        }


def _bind(factory: SingletonFactory, term: LeaderTerm) -> Callable[[], Awaitable[None]]:
    return lambda: factory(term)


def _enable_tcp_keepalive(conn: asyncpg.Connection) -> None:
    """Client-side TCP keepalives, so a silent network partition breaks the socket too."""
    transport = getattr(conn, "_transport", None)
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # unix sockets have no network to partition
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 2), ("TCP_KEEPINTVL", 1), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        # Unacknowledged writes fail after this many milliseconds instead of ~15 minutes.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000)


Fence = Callable[[], contextlib.AbstractAsyncContextManager[Conn]]


@contextlib.asynccontextmanager
async def write_transaction(
    fence: Fence | None, pool_getter: Callable[[], asyncpg.Pool]
) -> AsyncIterator[Conn]:
    """A transaction fenced by a leader term's epoch (``fence``: ``LeaderTerm.fenced``), or a plain
    one where no term applies (a command-line run, a test driving the worker directly)."""
    if fence is not None:
        async with fence() as conn:
            yield conn
        return
    async with pool_getter().acquire() as conn, conn.transaction():
        yield conn
