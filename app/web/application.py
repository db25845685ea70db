"""The aiohttp application, built so the port can open before anything slow happens.

:func:`make_web_app` needs only light modules (aiohttp, settings, logging, the route table and the
health page). The rest of the service (database driver, KIE client, callback intake, leader
election...) is imported in a worker thread after the port is open, so the event loop keeps
answering ``/health`` meanwhile, and then wired by ``app.wiring`` into the :class:`RuntimeSlot`.
Requests for other routes that arrive in that window wait for it (bounded).

The runtime's parts are started by the wiring and stopped at application cleanup, in reverse
order, after the HTTP server has drained its requests.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from app.config import Settings
from app.logs import get_logger
from app.web.keys import RUNTIME, RuntimeSlot
from app.web.middleware import request_context
from app.web.routes import add_routes

if TYPE_CHECKING:
    from app.runtime import Runtime

log = get_logger(__name__)

# JSON API bodies are small; the callback route reads its (larger) bodies by hand.
CLIENT_MAX_SIZE = 1024**2

Configure = Callable[["Runtime"], None]


def make_web_app(settings: Settings, configure: Configure | None = None) -> web.Application:
    """The application with every route; its runtime is built in the background once it starts.

    ``configure(runtime)`` runs after the runtime is built and before its parts start (tests use
    it to register extra singleton work).
    """
    app = web.Application(middlewares=[request_context], client_max_size=CLIENT_MAX_SIZE)
    app[RUNTIME] = RuntimeSlot(settings)
    add_routes(app)
    app.cleanup_ctx.append(_lifespan(configure))
    return app


def _lifespan(configure: Configure | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        slot = app[RUNTIME]
        wiring = asyncio.create_task(_wire(slot, configure), name="wiring")
        try:
            yield
        finally:
            wiring.cancel()
            await asyncio.gather(wiring, return_exceptions=True)
            await slot.resources.aclose()

    return lifespan


async def _wire(slot: RuntimeSlot, configure: Configure | None) -> None:
    """Import the composition root off the event loop, then build and start the runtime."""
    try:
        # A thread, so /health keeps being answered while Python imports (and compiles) the rest.
        wiring = await asyncio.to_thread(importlib.import_module, "app.wiring")
        await wiring.start(slot, configure)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception("server.wiring_failed", error=repr(exc)[:300])
        slot.fail(exc)
