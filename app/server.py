"""Process life: bind the port first, run until a signal or a fatal error, drain, exit in time.

The port is bound before anything slow happens: the application answers ``/health`` from this
moment, while the rest of the service is imported and wired in the background
(``app.web.application``). On SIGTERM (Render's deploy and scale-down) leadership is handed over
first, so a peer takes over while we drain; a watchdog makes sure the process is gone within
10 seconds whatever hangs.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from aiohttp import web

from app import __version__
from app.config import Settings
from app.logs import get_logger
from app.web.application import Configure, make_web_app
from app.web.keys import RUNTIME

log = get_logger(__name__)

# Render gives 30 s between SIGTERM and SIGKILL; we promise to be gone within 10 s.
_EXIT_DEADLINE_S = 9.5


async def serve(settings: Settings, configure: Configure | None = None) -> int:
    """Run the service until SIGTERM/SIGINT or a fatal error; return the exit code.

    ``configure(runtime)`` may register extra singleton work once the runtime is built.
    """
    loop = asyncio.get_running_loop()
    app = make_web_app(settings, configure)
    slot = app[RUNTIME]
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
        instance=settings.instance_id,
        version=__version__,
        pid=os.getpid(),
    )

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _on_signal, stop, signum)
    stop_waiter = asyncio.create_task(stop.wait(), name="server.wait_stop")
    waiters: set[asyncio.Future[Any]] = {stop_waiter, slot.fatal}
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    stop_waiter.cancel()

    exit_code = 0
    if slot.fatal.done():
        exit_code = 1
        log.error("server.fatal", error=str(slot.fatal.result()))
    # A last resort: whatever hangs during shutdown, the process is gone before the deadline.
    watchdog = loop.call_later(_EXIT_DEADLINE_S, _force_exit)
    log.info("server.stopping", exit_code=exit_code)
    if (runtime := slot.current) is not None:
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
