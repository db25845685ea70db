"""Every HTTP endpoint of the service, in one table.

The port opens before the rest of the service is imported (see ``app.web.application``), so the
table names each handler as ``"module:function"`` instead of importing it. ``/health`` and
``/metrics`` are bound at once (their modules are light); every other route is bound to its
handler as soon as the composition root has been imported, and a request that arrives before that
waits for it, bounded. Handlers live in ``app/web/<feature>.py``.

Paths under ``/api/`` require an ``X-API-Key``: the request middleware checks it by path, so a
new API route is protected without anyone remembering to. The exceptions are the public contract,
``/api/v1/openapi.json`` and its page ``/api/docs`` (``KEYLESS_PATHS`` in ``app.web.middleware``).
Every route here is in that document, and ``tests/service/test_openapi.py`` checks it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from app.logs import get_logger
from app.web.errors import json_error
from app.web.keys import RUNTIME, Handler

log = get_logger(__name__)

# How long a request that arrives while the process is still starting waits for it.
WIRING_WAIT_S = 10.0


@dataclass(frozen=True)
class Route:
    """One endpoint: method, path template and the handler's ``module:function``."""

    method: str
    path: str
    handler: str
    eager: bool = False  # bound at once: the handler's module is light and needs no runtime


ROUTES: tuple[Route, ...] = (
    Route("GET", "/health", "app.web.health:health", eager=True),
    Route("GET", "/health/detailed", "app.web.health:health_detailed", eager=True),
    Route("GET", "/metrics", "app.web.metrics:metrics", eager=True),
    Route("POST", "/callbacks/kie", "app.web.callbacks:kie_callback"),
    # Any path below, newlines included (``.`` would not match one, and KIE would get a 404).
    Route("POST", r"/callbacks/kie/{tail:[\s\S]*}", "app.web.callbacks:kie_callback"),
    Route("POST", "/telegram/webhook", "app.web.telegram:telegram_webhook"),
    Route("GET", "/api/v1/openapi.json", "app.web.openapi:openapi_json", eager=True),
    Route("GET", "/api/docs", "app.web.docs:docs_page", eager=True),
    Route("GET", "/api/v1/models", "app.web.models:list_models"),
    Route("POST", "/api/v1/generations", "app.web.generations:create_generation"),
    Route("GET", "/api/v1/generations", "app.web.generations:list_generations"),
    Route("GET", "/api/v1/generations/{id}", "app.web.generations:get_generation"),
    Route("POST", "/api/v1/generations/{id}/cancel", "app.web.generations:cancel_generation"),
    Route("GET", "/api/v1/generations/{id}/events", "app.web.generations:generation_events"),
    Route("GET", "/api/v1/ws", "app.web.events:generation_socket"),
    Route("GET", "/api/v1/webhook-secret", "app.web.webhooks:webhook_secret"),
    Route("GET", "/api/v1/generations/{id}/deliveries", "app.web.webhooks:list_deliveries"),
    Route("POST", "/api/v1/generations/{id}/deliveries/retry", "app.web.webhooks:retry_deliveries"),
    Route("POST", "/api/v1/uploads", "app.web.uploads:create_upload"),
    Route("GET", "/files/{id}/{name}", "app.web.files:serve_file"),
    Route("HEAD", "/files/{id}/{name}", "app.web.files:serve_file"),
)


def resolve(reference: str) -> Handler:
    """The handler a ``module:function`` reference names (imports the module if needed)."""
    module_name, _, function = reference.partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), function)
    return handler


def lazy_handlers() -> dict[str, Handler]:
    """Every lazily bound route's handler, by reference: called once the composition root is imported."""
    return {route.handler: resolve(route.handler) for route in ROUTES if not route.eager}


def add_routes(app: web.Application) -> None:
    """Register every route of the table on ``app``."""
    for route in ROUTES:
        handler = resolve(route.handler) if route.eager else _bound_later(route)
        app.router.add_route(route.method, route.path, handler)


def _bound_later(route: Route) -> Handler:
    """A handler that runs ``route``'s real handler once the runtime exists (waiting for it, bounded)."""
    unready = _UNREADY.get(route.handler, starting)

    async def handler(request: web.Request) -> web.StreamResponse:
        slot = request.app[RUNTIME]
        if not slot.ready and await slot.wait(WIRING_WAIT_S) is None:
            return unready(request)
        return await slot.handlers[route.handler](request)

    handler.__doc__ = f"{route.method} {route.path} (bound to {route.handler} once the service is wired)."
    return handler


def starting(request: web.Request) -> web.Response:
    """503 for a request that waited longer than :data:`WIRING_WAIT_S` for the service to start."""
    return json_error(
        503, "starting", "the service is still starting; retry shortly", headers={"Retry-After": "1"}
    )


def _callback_not_wired(request: web.Request) -> web.Response:
    # Always 200 for KIE (anything else starts a retry storm); a process that cannot wire itself
    # within the wait exits as fatal, so this is logged as the loss it is.
    log.error("kie_callback.lost", reason="the service did not finish starting", path=request.path)
    return web.Response(body=b'{"ok":true}', content_type="application/json")


_UNREADY: dict[str, Callable[[web.Request], web.Response]] = {
    "app.web.callbacks:kie_callback": _callback_not_wired,
}
