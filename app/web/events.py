"""GET /api/v1/ws: generation events over a WebSocket, the same envelope as SSE
(``{"type": "progress" | "completed" | "error", "data": {...}}``).

``?generation=<id>`` follows one generation (its current state first, closed after its end);
without it, every generation of the caller. ``?since=<updated_at>`` (the last ``data.updated_at``
seen) first sends what changed after it, so a client that reconnects misses nothing. The API key
comes in ``X-API-Key`` or, for browsers that cannot set headers on a WebSocket, ``?key=``.
Heartbeats are WebSocket pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import orjson
from aiohttp import WSMsgType, web

from app.generations.model import Generation
from app.generations.public import envelope, files_envelope
from app.web.auth import OWNER
from app.web.errors import json_error
from app.web.keys import runtime_of
from app.web.params import not_found

_HEARTBEAT_S = 20.0
_CATCH_UP = 100


async def generation_socket(request: web.Request) -> web.StreamResponse:
    """Upgrade and stream envelopes until the client leaves (or the one generation ends)."""
    runtime = runtime_of(request.app)
    owner = request[OWNER]
    generation_id = None
    if raw_id := request.query.get("generation"):
        try:
            generation_id = uuid.UUID(raw_id)
        except ValueError:
            return not_found()
    since = None
    if raw_since := request.query.get("since"):
        try:
            since = datetime.fromisoformat(raw_since.replace(" ", "+"))
        except ValueError:
            return json_error(
                422, "invalid_input", "since must be an ISO-8601 time (a data.updated_at)", field="since"
            )
        try:
            # In UTC, as PostgreSQL holds it: year 1 at +14:00 or 9999-12-31 at -14:00 do not fit.
            since = (since if since.tzinfo else since.replace(tzinfo=UTC)).astimezone(UTC)
        except OverflowError:
            return json_error(422, "invalid_input", "since is out of range", field="since")
    service, links, hub = runtime.generations, runtime.file_links, runtime.events
    # Follow before the first read: a change committed in between is then queued, not missed.
    follower = hub.follow(owner, generation_id)
    try:
        first = await service.get(generation_id, owner) if generation_id else None
    except BaseException:
        hub.unfollow(follower)
        raise
    if generation_id is not None and first is None:
        hub.unfollow(follower)
        return not_found()
    socket = web.WebSocketResponse(heartbeat=_HEARTBEAT_S)
    try:
        await socket.prepare(request)
    except BaseException:
        hub.unfollow(follower)
        raise
    reader = asyncio.create_task(_drain(socket), name="ws.reader")
    try:
        ended: set[uuid.UUID] = set()  # their completed/error went out: later changes are progress

        async def send(generation: Generation) -> None:
            event = (
                files_envelope(generation, links) if generation.id in ended else envelope(generation, links)
            )
            if generation.terminal:
                ended.add(generation.id)
            await socket.send_str(_encode(event))

        if first is not None:
            if since is None or first.updated_at > since:
                await send(first)
            if first.settled:
                return socket
        elif since is not None:
            for missed in await service.changed_since(owner, since, _CATCH_UP):
                await send(missed)
        while not reader.done():
            getter = asyncio.ensure_future(follower.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            generation = getter.result()
            if first is not None and generation.updated_at <= first.updated_at:
                continue  # queued before the first read, and already in it
            await send(generation)
            if generation_id is not None and generation.settled:
                break
    finally:
        hub.unfollow(follower)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await socket.close()
    return socket


async def _drain(socket: web.WebSocketResponse) -> None:
    """Read what the client sends (nothing is expected) until it closes."""
    async for message in socket:
        if message.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            return


def _encode(event: dict[str, object]) -> str:
    return orjson.dumps(event, default=str).decode()
