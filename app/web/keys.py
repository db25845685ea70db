"""What the aiohttp application holds: a slot that receives the process's :class:`Runtime` once
the composition root has built it.

The port opens before anything slow is imported or built (``app.web.application``), so for the
first moments of a process the slot is empty: ``/health`` answers ``starting``, and every other
route waits (bounded) for the slot to fill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

from aiohttp import web

from app.config import Settings

if TYPE_CHECKING:
    from app.runtime import Runtime

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NotWired(RuntimeError):
    """The runtime is not built yet (the process is still starting)."""


class RuntimeSlot:
    """The runtime of this process, once built; the handlers of every lazily bound route."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: Runtime | None = None
        self.handlers: dict[str, Handler] = {}
        self.resources = AsyncExitStack()  # the runtime's parts, closed in reverse order at cleanup
        self._ready = asyncio.Event()
        self._fatal: asyncio.Future[BaseException] | None = None

    @property
    def ready(self) -> bool:
        """True once the runtime is built and its parts started."""
        return self._runtime is not None

    @property
    def runtime(self) -> Runtime:
        """The runtime; raises :class:`NotWired` while the process is still starting."""
        if self._runtime is None:
            raise NotWired("the service is still starting")
        return self._runtime

    @property
    def current(self) -> Runtime | None:
        """The runtime, or None while starting (for pages that report on startup itself)."""
        return self._runtime

    def fill(self, runtime: Runtime, handlers: dict[str, Handler]) -> None:
        """Publish the built runtime and the handlers of the lazily bound routes."""
        self.handlers = handlers
        self._runtime = runtime
        self._ready.set()

    async def wait(self, timeout: float) -> Runtime | None:
        """The runtime once built, or None if ``timeout`` passed first."""
        if self._runtime is None:
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        return self._runtime

    @property
    def fatal(self) -> asyncio.Future[BaseException]:
        """Resolved with the error when a part of the process fails beyond recovery."""
        if self._fatal is None:
            self._fatal = asyncio.get_running_loop().create_future()
        return self._fatal

    def fail(self, exc: BaseException) -> None:
        """Ask the process to stop with an error: a background part cannot go on."""
        if not self.fatal.done():
            self.fatal.set_result(exc)


RUNTIME = web.AppKey("runtime", RuntimeSlot)


def runtime_of(app: web.Application) -> Runtime:
    """The application's runtime; raises :class:`NotWired` while the process is still starting."""
    return app[RUNTIME].runtime
