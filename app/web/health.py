"""Health endpoints: /health never waits on anything; /health/detailed measures."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from app.metrics import DATABASE_UP
from app.web.keys import RUNTIME

routes = web.RouteTableDef()

_DISABLED = {"status": "disabled", "last_error": None}


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """200 at once, in every role: Render's check must never wait on the database."""
    runtime = request.app[RUNTIME]
    return web.json_response(
        {"status": "ok", "role": runtime.role, "instance": runtime.instance, "version": runtime.version}
    )


@routes.get("/health/detailed")
async def health_detailed(request: web.Request) -> web.Response:
    """Every dependency's measured status; 200 even when some are down."""
    runtime = request.app[RUNTIME]
    # Measured side by side: each is bounded, and the page must stay well inside a 5 s check.
    database, leader, storage, kie = await asyncio.gather(
        runtime.database.health(),
        runtime.leader.describe(),
        runtime.storage.health(),
        runtime.kie_health.health(),
    )
    DATABASE_UP.set(1 if database.status == "up" else 0)
    components = {
        "database": {**database.as_dict(), "kind": runtime.database.kind},
        "kie": kie,
        "storage": storage,
        "telegram": dict(_DISABLED),
    }
    return web.json_response(
        {
            "status": "ok" if database.status == "up" else "degraded",
            "role": runtime.role,
            "instance": runtime.instance,
            "version": runtime.version,
            "uptime_s": round(time.time() - runtime.started_at, 1),
            "leader": leader,
            "components": components,
            "callbacks": {
                "mode": "direct" if runtime.callbacks.healthy else "spool",
                "spool_pending": runtime.callbacks.spool_pending,
                "last_error": runtime.callbacks.last_error,
            },
        }
    )
