"""The in-process application: wait for its runtime, which is wired in the background once the
server has started (as in production, where the port opens first)."""

from __future__ import annotations

from aiohttp import web

from app.runtime import Runtime
from app.web.keys import RUNTIME


async def wired(app: web.Application, timeout: float = 15) -> Runtime:
    """The app's runtime once built and started; fails the test if that takes over ``timeout``."""
    runtime = await app[RUNTIME].wait(timeout)
    assert runtime is not None, f"the service was not wired within {timeout} s"
    return runtime
