"""Middleware every request passes through: request id, JSON errors, metrics."""

from __future__ import annotations

import re
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from app.logs import get_logger
from app.metrics import HTTP_UNHANDLED_ERRORS, http_request_timer
from app.random_ids import random_hex
from app.web.auth import authenticate
from app.web.errors import json_error
from app.web.keys import RUNTIME
from app.web.params import BadParameter, reject_nul_in_query
from app.web.routes import WIRING_WAIT_S, starting

log = get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("request_id", str)
API_PREFIX = "/api/"
# The API's contract and its page are public: read before anyone has a key (see app.web.openapi).
KEYLESS_PATHS = frozenset({"/api/v1/openapi.json", "/api/docs"})
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
}


def _route_of(request: web.Request) -> str:
    """The route template (``/api/v1/generations/{id}``), never the raw path, to bound label cardinality."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Give each request an id, check API keys under /api/, turn every error into JSON, and time it.

    One middleware rather than several: each layer costs every request, callbacks included.
    """
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if incoming and _SAFE_REQUEST_ID.match(incoming) else random_hex(16)
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    route = _route_of(request)
    try:
        keyed = request.path.startswith(API_PREFIX) and request.path not in KEYLESS_PATHS
        denied = await _check_api_key(request) if keyed else None
        if denied is None and request.path.startswith(API_PREFIX) and request.query_string:
            denied = reject_nul_in_query(request)
        response = denied if denied is not None else await handler(request)
    except BadParameter as exc:
        response = exc.response
    except web.HTTPException as exc:
        response = _http_exception_as_json(exc)
    except Exception:
        HTTP_UNHANDLED_ERRORS.labels(route=route).inc()
        log.exception("http.unhandled_error", route=route, method=request.method, request_id=request_id)
        response = json_error(500, "internal", "internal server error", request_id=request_id)
    if not response.prepared:
        response.headers[REQUEST_ID_HEADER] = request_id
    http_request_timer(route, request.method, response.status).observe(time.perf_counter() - started)
    return response


async def _check_api_key(request: web.Request) -> web.Response | None:
    """401 without a valid key (checked once the runtime's keys exist); None lets the request in."""
    slot = request.app[RUNTIME]
    runtime = slot.current or await slot.wait(WIRING_WAIT_S)
    if runtime is None:
        return starting(request)
    return authenticate(request, runtime.api_keys)


def _http_exception_as_json(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects and the like pass through as they are
    if exc.content_type == "application/json":
        return exc  # already a JSON error built by a handler
    message = exc.reason
    if exc.status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        message = (
            f"method {exc.method} is not allowed here; allowed: {', '.join(sorted(exc.allowed_methods))}"
        )
    elif exc.status == 413:
        message = "request body is too large"
    headers = {
        k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after", "www-authenticate")
    }
    return json_error(exc.status, _ERROR_NAMES.get(exc.status, "http_error"), message, headers=headers)
