"""Health endpoints: ``/health`` never waits on anything; ``/health/detailed`` measures.

Both are answered from the first moment the port is open: while the service is still starting
(its runtime not built yet) they say so instead of waiting.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from app import __version__
from app.web.keys import RUNTIME

if TYPE_CHECKING:
    from app.runtime import Runtime

_STARTED_AT = time.time()
_DISABLED = {"status": "disabled", "latency_ms": None, "last_error": None}
_STARTING = {"status": "starting", "latency_ms": None, "last_error": None}


async def health(request: web.Request) -> web.Response:
    """200 at once, in every role: Render's check must never wait on the database."""
    slot = request.app[RUNTIME]
    runtime = slot.current
    return web.json_response(
        {
            "status": "ok",
            "role": runtime.role if runtime is not None else "starting",
            "instance": slot.settings.instance_id,
            "version": __version__,
        }
    )


async def health_detailed(request: web.Request) -> web.Response:
    """Every dependency's measured status; 200 even when some are down."""
    slot = request.app[RUNTIME]
    runtime = slot.current
    body: dict[str, Any] = {
        "status": "starting",
        "role": "starting",
        "instance": slot.settings.instance_id,
        "version": __version__,
        "uptime_s": round(time.time() - _STARTED_AT, 1),
        "leader": None,
        "components": {
            "database": dict(_STARTING),
            "kie": dict(_STARTING),
            "storage": dict(_STARTING),
            "telegram": dict(_DISABLED),
        },
    }
    if runtime is None:
        return web.json_response(body)
    # Measured side by side: each is bounded, and the page must stay well inside a 5 s check.
    database, leader, storage, kie, telegram = await asyncio.gather(
        runtime.database.health(),
        runtime.leader.describe(),
        runtime.storage.probe.health(),
        runtime.kie_probe.health(),
        _telegram(runtime),
    )
    intake = runtime.callback_intake
    body.update(
        status="ok" if database.status == "up" else "degraded",
        role=runtime.role,
        leader=leader,
        components={
            "database": database.as_dict(),
            "kie": kie.as_dict(),
            "storage": storage.as_dict(),
            "telegram": telegram,
        },
        callbacks={
            "mode": "direct" if intake.healthy else "spool",
            "spool_pending": intake.spool_pending,
            "last_error": intake.last_error,
        },
    )
    return web.json_response(body)


async def _telegram(runtime: Runtime) -> dict[str, Any]:
    if runtime.telegram is None:
        return dict(_DISABLED)
    return (await runtime.telegram.probe.health()).as_dict()
