"""The generations API: create, read, list, follow (server-sent events), cancel; and the models."""

from __future__ import annotations

import asyncio
import base64
import functools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from app.db.generations import TERMINAL_STATES
from app.kie.catalog import InvalidInputError, UnknownModelError
from app.services.generation_service import IdempotencyConflict, NotConnected
from app.web.auth import OWNER
from app.web.errors import json_error
from app.web.keys import RUNTIME

routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _unavailable_as_503(handler: Handler) -> Handler:
    """A database that is not reachable yet is a 503 the client can retry, not a 500."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except NotConnected:
            return json_error(
                503,
                "unavailable",
                "the database is not reachable yet; retry shortly",
                headers={"Retry-After": "2"},
            )

    return wrapper


_MAX_BODY = 256 * 1024
_STATES = ("queued", "submitted", "running", "succeeded", "failed", "timed_out", "canceled")
_SSE_HEARTBEAT_S = 15.0
_SSE_MAX_S = 3600.0


def generation_json(row: asyncpg.Record) -> dict[str, Any]:
    """The public shape of a generation (the contract's fields)."""
    return {
        "id": str(row["id"]),
        "state": row["state"],
        "model": row["model"],
        "task_id": row["task_id"],
        "result_urls": _json(row["result_urls"]) or [],
        "files": _json(row["files"]) or [],
        "result_object": _json(row["result_object"]),
        "error": row["error"],
        "error_code": row["error_code"],
        "stage": row["stage"],
        "progress": row["progress"],
        "input": _json(row["input"]),
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


@routes.get("/api/v1/models")
async def list_models(request: web.Request) -> web.Response:
    """Every model we offer, with its required and optional input fields."""
    catalog = request.app[RUNTIME].generations.catalog
    models = [
        {
            "id": model.id,
            "family": model.family,
            "output": model.output,
            "title": model.title,
            "required": model.required,
            "optional": model.optional,
            "timeout_s": model.timeout_s,
        }
        for model in catalog.models()
    ]
    return web.json_response({"models": models}, dumps=_dumps)


@routes.post("/api/v1/generations")
@_unavailable_as_503
async def create_generation(request: web.Request) -> web.Response:
    """202 with the queued generation; 422 naming the field for bad input."""
    if request.content_length is not None and request.content_length > _MAX_BODY:
        return json_error(413, "payload_too_large", "request body is too large")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return json_error(422, "invalid_input", "the body must be a JSON object", field="body")
    if not isinstance(body, dict):
        return json_error(422, "invalid_input", "the body must be a JSON object", field="body")
    model_id = body.get("model")
    if not isinstance(model_id, str) or not model_id:
        return json_error(422, "invalid_input", "model is required (see GET /api/v1/models)", field="model")
    idempotency_key = request.headers.get("Idempotency-Key") or None
    if idempotency_key is not None and len(idempotency_key) > 200:
        return json_error(
            422, "invalid_input", "Idempotency-Key is longer than 200 characters", field="Idempotency-Key"
        )
    service = request.app[RUNTIME].generations
    try:
        created = await service.create_generation(
            owner=request[OWNER],
            source="api",
            model_id=model_id,
            input=body.get("input", {}),
            idempotency_key=idempotency_key,
        )
    except UnknownModelError:
        return json_error(
            422, "invalid_input", f"unknown model {model_id!r} (see GET /api/v1/models)", field="model"
        )
    except InvalidInputError as exc:
        return json_error(422, "invalid_input", exc.reason, field=exc.field)
    except IdempotencyConflict as exc:
        return json_error(409, "conflict", str(exc))
    status = 202 if created.created else 200
    return web.json_response(generation_json(created.row), status=status, dumps=_dumps)


@routes.get("/api/v1/generations")
@_unavailable_as_503
async def list_generations(request: web.Request) -> web.Response:
    """The caller's generations, newest first: ?state=&model=&limit=&cursor=."""
    state = request.query.get("state") or None
    if state is not None and state not in _STATES:
        return json_error(422, "invalid_input", f"state must be one of {', '.join(_STATES)}", field="state")
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
    rows = await request.app[RUNTIME].generations.list(
        owner=request[OWNER],
        state=state,
        model=request.query.get("model") or None,
        before=before,
        limit=limit,
    )
    next_cursor = _encode_cursor(rows[-1]) if len(rows) == limit else None
    return web.json_response(
        {"generations": [generation_json(row) for row in rows], "next_cursor": next_cursor}, dumps=_dumps
    )


@routes.get("/api/v1/generations/{id}")
@_unavailable_as_503
async def get_generation(request: web.Request) -> web.Response:
    """One generation; 404 when unknown (or another key's). ?wait=N waits up to N s for the end."""
    generation_id = _parse_id(request)
    service = request.app[RUNTIME].generations
    row = await service.get(generation_id, request[OWNER]) if generation_id else None
    if row is not None and (wait := _wait_seconds(request)) > 0 and row["state"] not in TERMINAL_STATES:
        row = await service.wait_for_terminal(generation_id, wait) or row  # type: ignore[arg-type]
    if row is None:
        return json_error(404, "not_found", "no generation with this id")
    return web.json_response(generation_json(row), dumps=_dumps)


@routes.post("/api/v1/generations/{id}/cancel")
@_unavailable_as_503
async def cancel_generation(request: web.Request) -> web.Response:
    """Stop tracking an open generation; a finished one is returned unchanged."""
    generation_id = _parse_id(request)
    row = (
        await request.app[RUNTIME].generations.cancel(generation_id, request[OWNER])
        if generation_id
        else None
    )
    if row is None:
        return json_error(404, "not_found", "no generation with this id")
    return web.json_response(generation_json(row), dumps=_dumps)


@routes.get("/api/v1/generations/{id}/events")
@_unavailable_as_503
async def generation_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``progress`` on every change, then ``completed`` or ``error``, then the end."""
    generation_id = _parse_id(request)
    service = request.app[RUNTIME].generations
    row = await service.get(generation_id, request[OWNER]) if generation_id else None
    if row is None or generation_id is None:
        return json_error(404, "not_found", "no generation with this id")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    deadline = asyncio.get_running_loop().time() + _SSE_MAX_S
    last_seen: tuple[Any, ...] | None = None
    while True:
        key = (row["state"], row["stage"], row["progress"], row["updated_at"])
        if key != last_seen:
            last_seen = key
            await response.write(_sse(envelope(row)))
        if row["state"] in TERMINAL_STATES or asyncio.get_running_loop().time() > deadline:
            break
        changed = await service.wait_for_change(generation_id, row["updated_at"], _SSE_HEARTBEAT_S)
        if changed is None or changed["updated_at"] == row["updated_at"]:
            await response.write(b": keep-alive\n\n")  # lets proxies and clients see we are alive
        row = changed or row
    await response.write_eof()
    return response


def envelope(row: asyncpg.Record) -> dict[str, Any]:
    """The event envelope shared by every channel: progress, completed or error."""
    data = generation_json(row)
    if row["state"] == "succeeded":
        return {"type": "completed", "data": data}
    if row["state"] in ("failed", "timed_out", "canceled"):
        return {
            "type": "error",
            "data": {
                **data,
                "error": row["error_code"] or row["state"],
                "message": row["error"] or row["state"],
            },
        }
    return {"type": "progress", "data": data}


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _parse_id(request: web.Request) -> uuid.UUID | None:
    try:
        return uuid.UUID(request.match_info["id"])
    except ValueError:
        return None


def _wait_seconds(request: web.Request) -> float:
    try:
        return max(0.0, min(60.0, float(request.query.get("wait", "0"))))
    except ValueError:
        return 0.0


def _encode_cursor(row: asyncpg.Record) -> str:
    raw = f"{row['created_at'].isoformat()}|{row['id']}"
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


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str) else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()
