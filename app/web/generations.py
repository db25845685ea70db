"""The generations API: create, read, list, follow (server-sent events), cancel.

Handlers translate HTTP to calls of :class:`~app.generations.service.GenerationService` and its
answers to the public JSON of :mod:`app.generations.public`.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from app.db.database import DatabaseUnavailable
from app.generations.model import Generation
from app.generations.public import envelope, files_envelope, generation_json
from app.generations.service import IdempotencyConflict
from app.kie.catalog import InvalidInputError, UnknownModelError
from app.states import State
from app.web.auth import OWNER
from app.web.errors import json_error
from app.web.keys import runtime_of
from app.web.params import BadParameter, bounded_float, not_found, nul_error, nul_path, path_uuid
from app.webhooks.targets import RefusedTarget, check_target

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MAX_BODY = 256 * 1024
_MAX_IDEMPOTENCY_KEY = 200
_MAX_WAIT_S = 60.0
_SSE_HEARTBEAT_S = 15.0
_SSE_MAX_S = 3600.0
_STATE_VALUES = frozenset(state.value for state in State)
_STATE_NAMES = ", ".join(state.value for state in State)


def unavailable_as_503(handler: Handler) -> Handler:
    """A database that is not reachable yet is a 503 the client can retry, not a 500."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except DatabaseUnavailable:
            return json_error(
                503,
                "unavailable",
                "the database is not reachable yet; retry shortly",
                headers={"Retry-After": "2"},
            )

    return wrapper


@unavailable_as_503
async def create_generation(request: web.Request) -> web.Response:
    """202 with the queued generation; 422 naming the field for bad input."""
    if request.content_length is not None and request.content_length > _MAX_BODY:
        return json_error(413, "payload_too_large", "request body is too large")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return json_error(422, "invalid_input", "the body must be a JSON object", field="body")
    if (field := nul_path(body, "")) is not None:
        return nul_error(field)
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return json_error(422, "invalid_input", "model is required (see GET /api/v1/models)", field="model")
    webhook_url = body.get("webhook_url")
    if webhook_url is not None:
        if not isinstance(webhook_url, str):
            return json_error(
                422, "invalid_input", "webhook_url must be a string (an https URL)", field="webhook_url"
            )
        try:
            await check_target(webhook_url, runtime_of(request.app).settings.webhooks)
        except RefusedTarget as exc:
            return json_error(422, "invalid_input", str(exc), field="webhook_url")
    idempotency_key = request.headers.get("Idempotency-Key") or None
    if idempotency_key is not None and not _is_text(idempotency_key):
        return json_error(
            422, "invalid_input", "Idempotency-Key must be printable UTF-8 text", field="Idempotency-Key"
        )
    if idempotency_key is not None and len(idempotency_key) > _MAX_IDEMPOTENCY_KEY:
        return json_error(
            422,
            "invalid_input",
            f"Idempotency-Key is longer than {_MAX_IDEMPOTENCY_KEY} characters",
            field="Idempotency-Key",
        )
    service = runtime_of(request.app).generations
    try:
        created = await service.create_generation(
            owner=request[OWNER],
            source="api",
            model_id=model_id,
            input=body.get("input", {}),
            idempotency_key=idempotency_key,
            webhook_url=webhook_url,
        )
    except UnknownModelError:
        return json_error(
            422, "invalid_input", f"unknown model {model_id!r} (see GET /api/v1/models)", field="model"
        )
    except InvalidInputError as exc:
        return json_error(422, "invalid_input", exc.reason, field=exc.field)
    except IdempotencyConflict as exc:
        return json_error(409, "conflict", str(exc))
    return _json(
        generation_json(created.generation, runtime_of(request.app).file_links),
        status=202 if created.created else 200,
    )


@unavailable_as_503
async def list_generations(request: web.Request) -> web.Response:
    """The caller's generations, newest first: ?state=&model=&limit=&cursor=."""
    state_name = request.query.get("state") or None
    if state_name is not None and state_name not in _STATE_VALUES:
        return json_error(422, "invalid_input", f"state must be one of {_STATE_NAMES}", field="state")
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 100:
        return json_error(422, "invalid_input", "limit must be an integer from 1 to 100", field="limit")
    before = None
    if cursor := request.query.get("cursor"):
        before = _decode_cursor(cursor)
        if before is None:
            return json_error(422, "invalid_input", "cursor is not one this API returned", field="cursor")
    generations = await runtime_of(request.app).generations.list(
        owner=request[OWNER],
        state=State(state_name) if state_name else None,
        model=request.query.get("model") or None,
        before=before,
        limit=limit,
    )
    links = runtime_of(request.app).file_links
    next_cursor = _encode_cursor(generations[-1]) if len(generations) == limit else None
    return _json(
        {"generations": [generation_json(g, links) for g in generations], "next_cursor": next_cursor}
    )


@unavailable_as_503
async def get_generation(request: web.Request) -> web.Response:
    """One generation; 404 when unknown (or another key's). ?wait=N waits up to N s for the end."""
    generation = await owned_generation(request)
    service = runtime_of(request.app).generations
    await service.reconcile(generation)
    wait = bounded_float(request, "wait", low=0.0, high=_MAX_WAIT_S, default=0.0)
    if wait > 0 and not generation.terminal:
        generation = await service.wait_for_terminal(generation.id, wait) or generation
    return _json(generation_json(generation, runtime_of(request.app).file_links))


@unavailable_as_503
async def cancel_generation(request: web.Request) -> web.Response:
    """Stop tracking an open generation; a finished one is returned unchanged."""
    generation = await runtime_of(request.app).generations.cancel(path_uuid(request), request[OWNER])
    if generation is None:
        return not_found()
    return _json(generation_json(generation, runtime_of(request.app).file_links))


@unavailable_as_503
async def generation_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``progress`` on every change, then ``completed`` or ``error``; after a
    ``completed`` whose results are still being copied, one more ``progress`` with ``files``; the end.

    Changes come from the instance's event hub (one LISTEN, each change read once for every
    follower), not from a read per stream; a heartbeat re-reads the row as a safety net.
    """
    generation = await owned_generation(request)
    generation_id = generation.id
    runtime = runtime_of(request.app)
    service, links = runtime.generations, runtime.file_links
    follower = runtime.events.follow(request[OWNER], generation_id)
    try:
        # Read again after following: a change committed in between is then queued, not missed.
        generation = await service.get(generation_id) or generation
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        deadline = asyncio.get_running_loop().time() + _SSE_MAX_S
        last_seen: tuple[Any, ...] | None = None
        ended = False  # the completed or error event went out
        # Each event's id is the generation's updated_at: a client that reconnects with
        # Last-Event-ID gets the current state only if it changed since the event it saw last.
        if request.headers.get("Last-Event-ID") == generation.updated_at.isoformat():
            last_seen = (generation.state, generation.stage, generation.progress, generation.mirror_state)
            ended = generation.terminal
        while True:
            key = (generation.state, generation.stage, generation.progress, generation.mirror_state)
            if key != last_seen:
                last_seen = key
                event = files_envelope(generation, links) if ended else envelope(generation, links)
                await response.write(_sse(event, generation.updated_at.isoformat()))
                ended = generation.terminal
            if generation.settled or asyncio.get_running_loop().time() > deadline:
                break
            changed: Generation | None
            try:
                async with asyncio.timeout(_SSE_HEARTBEAT_S):
                    changed = await follower.queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")  # lets proxies and clients see we are alive
                changed = await service.get(generation_id)  # the safety net: a change the hub missed
            if changed is not None and changed.updated_at >= generation.updated_at:
                generation = changed
        await response.write_eof()
        return response
    finally:
        runtime.events.unfollow(follower)


async def owned_generation(request: web.Request) -> Generation:
    """The caller's generation named by the path; a 404 when it is unknown or another key's."""
    generation = await runtime_of(request.app).generations.get(path_uuid(request), request[OWNER])
    if generation is None:
        raise BadParameter(not_found())
    return generation


def _sse(event: dict[str, Any], event_id: str) -> bytes:
    kind: str = event["type"]
    return (
        b"id: "
        + event_id.encode()
        + b"\nevent: "
        + kind.encode()
        + b"\ndata: "
        + orjson.dumps(event)
        + b"\n\n"
    )


def _encode_cursor(generation: Generation) -> str:
    raw = f"{generation.created_at.isoformat()}|{generation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_text, _, generation_id = raw.partition("|")
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None:
            return None
        # Out-of-range instants (year 1 at +14:00) fail here, not in the database.
        return created.astimezone(UTC), uuid.UUID(generation_id)
    except (ValueError, UnicodeDecodeError, OverflowError):
        return None


def _json(body: Any, *, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _is_text(value: str) -> bool:
    """True for text PostgreSQL can store: UTF-8 (header bytes that are not arrive as surrogates)
    and no control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return value.isprintable()
