"""Supervised background tasks: a crash is logged and the task restarted with backoff."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from app.backoff import Backoff
from app.logs import get_logger

log = get_logger(__name__)

# A task that ran this long before failing is considered healthy again: its backoff restarts.
_HEALTHY_AFTER_S = 30.0


async def supervise(
    name: str, factory: Callable[[], Awaitable[None]], backoff: Backoff | None = None
) -> None:
    """Run ``factory()`` forever: restart it after a crash or an unexpected return.

    Only cancellation stops it, which is how its owner ends it.
    """
    backoff = backoff or Backoff(base=0.2, cap=10.0)
    while True:
        started = time.monotonic()
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - started > _HEALTHY_AFTER_S:
                backoff.reset()
            delay = backoff.next_delay()
            log.exception("task.crashed", task=name, error=repr(exc), restart_in_s=round(delay, 2))
        else:
            delay = backoff.next_delay()
            log.warning("task.returned", task=name, restart_in_s=round(delay, 2))
        await asyncio.sleep(delay)
