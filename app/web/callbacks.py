"""POST /callbacks/kie (and any path below it): always HTTP 200.

A non-200 answer makes KIE retry, and storms follow; a callback we cannot keep
is logged loudly instead. The body is read by hand, past the app's request-size
limit, so a large payload is stored (truncated) rather than refused.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from app.callbacks.rows import RawCallback
from app.logs import get_logger
from app.metrics import KIE_CALLBACK_ACK_SECONDS
from app.web.keys import runtime_of

log = get_logger(__name__)

MAX_BODY_BYTES = 32 * 1024 * 1024
_ACK_BODY = b'{"ok":true}'


async def kie_callback(request: web.Request) -> web.Response:
    """Store the callback durably, then answer 200, whatever happened."""
    started = time.perf_counter()
    try:
        body, size = await _read_body(request)
        raw = RawCallback.new(
            path=request.path,
            content_type=request.headers.get("Content-Type"),
            query=dict(request.query.items()),
            headers={key.lower(): value for key, value in request.headers.items()},
            body=body,
            body_size=size,
        )
        await runtime_of(request.app).callback_intake.receive(raw)
    except Exception:
        log.exception("kie_callback.handler_error", path=request.path)
    KIE_CALLBACK_ACK_SECONDS.observe(time.perf_counter() - started)
    return web.Response(body=_ACK_BODY, content_type="application/json")


async def _read_body(request: web.Request) -> tuple[bytes, int]:
    """Up to MAX_BODY_BYTES of the body, and the body's full size."""
    length = request.content_length
    if length is not None and length <= MAX_BODY_BYTES:
        try:
            body = await request.content.readexactly(length)
            return body, length
        except asyncio.IncompleteReadError as exc:  # the client hung up mid-body: keep what arrived
            log.warning("kie_callback.body_incomplete", received=len(exc.partial), expected=length)
            return exc.partial, len(exc.partial)
    chunks: list[bytes] = []
    kept = size = 0
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if kept < MAX_BODY_BYTES:
                chunk = chunk[: MAX_BODY_BYTES - kept]
                chunks.append(chunk)
                kept += len(chunk)
    except Exception as exc:  # a client that hangs up mid-body: keep what arrived
        log.warning("kie_callback.body_incomplete", error=repr(exc)[:200], received=size)
    return b"".join(chunks), size
