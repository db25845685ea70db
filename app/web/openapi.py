"""GET /api/v1/openapi.json: the OpenAPI 3.1 document of every endpoint, written by hand here.

A Python module rather than a JSON file, on purpose: the parts every operation shares (the error
body, the 401/503 answers, the generation id parameter) are written once as small functions
instead of being repeated or chased through ``$ref`` boilerplate; a comment can sit next to an
operation saying where its behaviour lives; and the generation states come from
:mod:`app.states`, the one place they are named, so the document cannot drift from them. The
document is still plain data: built once at import, served as the same bytes every time, and
``tests/service/test_openapi.py`` proves it matches the route table (``app.web.routes``) and fuzzes
the running service against it with schemathesis.

It is served without an API key (``app.web.middleware`` exempts it, and ``/api/docs``, its HTML
rendering in :mod:`app.web.docs`): the contract is public information and holds no secret, and a
client generator or a person must be able to read it before they have a key.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from app import __version__
from app.states import State

Schema = dict[str, Any]

_STATES = [state.value for state in State]
_TERMINAL_STATES = ["succeeded", "failed", "timed_out", "canceled"]
_MIRROR_STATES = ["pending", "done", "failed", "disabled"]
_FIELD_TYPES = ["string", "integer", "number", "boolean", "enum", "url", "url_list"]
_WAIT_MAX_S = 60  # app.web.generations._MAX_WAIT_S
_IDEMPOTENCY_KEY_MAX = 200  # app.web.generations._MAX_IDEMPOTENCY_KEY


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None, **more: Any) -> Schema:
    """An object schema; every property is required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "required": list(properties) if required is None else required,
        "properties": properties,
        **more,
    }


def _json(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, *names: str) -> dict[str, Any]:
    """A response whose body is the error shape; ``names`` are the ``error`` values it may carry."""
    schema: Schema = _ref("Error")
    if names:
        schema = {"allOf": [_ref("Error"), {"properties": {"error": {"enum": list(names)}}}]}
    return _json(description, schema)


_UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
_UNAVAILABLE = {"$ref": "#/components/responses/Unavailable"}
_GENERATION_ID = {"$ref": "#/components/parameters/GenerationId"}
_NUL_422 = "A query parameter holds a NUL character (`field` names it)."
_API_KEY: list[dict[str, list[str]]] = [{"ApiKey": []}]
_PUBLIC: list[dict[str, list[str]]] = []


def _api(
    summary: str,
    description: str,
    responses: dict[str, Any],
    *,
    tag: str,
    operation_id: str,
    parameters: list[Any] | None = None,
    request_body: dict[str, Any] | None = None,
    security: list[dict[str, list[str]]] | None = None,
    keyed: bool = True,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation under ``/api/``: a key (unless ``keyed`` is False), and the answers every such path
    may give (422 for a NUL in any query parameter; with a key, 401 without a valid one and 503 while
    the service is starting)."""
    # The key check waits (bounded) for the service to start: 503 when it does not in time.
    common: dict[str, Any] = {"401": _UNAUTHORIZED, "503": _UNAVAILABLE} if keyed else {}
    answers = {**common, **responses}
    if "422" not in answers:
        answers["422"] = _error(_NUL_422, "invalid_input")
    operation: dict[str, Any] = {
        "tags": [tag],
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "security": security if security is not None else (_API_KEY if keyed else _PUBLIC),
        "responses": dict(sorted(answers.items())),
    }
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        operation["requestBody"] = request_body
    operation.update(extensions or {})
    return operation


# ---------------------------------------------------------------------------------------------
# Schemas
# ---------------------------------------------------------------------------------------------

_GENERATION_FILE = _object(
    {
        "name": {"type": "string", "description": "The file's name in our storage, e.g. `0.png`."},
        "content_type": {"type": "string"},
        "bytes": {"type": "integer", "minimum": 0},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "url": _nullable(
            "string",
            format="uri",
            description="A signed link to our copy (`/files/{id}/{name}?exp=&sig=`), opened without an "
            "API key; null only where no link can be made.",
        ),
    },
    additionalProperties=False,
    description="One of our copies of a result (see `mirror`).",
)

_GENERATION = _object(
    {
        "id": {"type": "string", "format": "uuid"},
        "state": {
            "type": "string",
            "enum": _STATES,
            "description": "queued (accepted, not yet at KIE) -> submitted -> running -> one terminal "
            "state: succeeded, failed, timed_out or canceled. A terminal state never changes.",
        },
        "model": {"type": "string", "description": "A model id of `GET /api/v1/models`."},
        "task_id": _nullable("string", description="KIE's task id, once KIE accepted the task."),
        "result_urls": {
            "type": "array",
            "items": {"type": "string"},
            "description": "KIE's result links (they expire: prefer `files`).",
        },
        "cover_url": _nullable("string"),
        "files": {"type": "array", "items": _ref("GenerationFile")},
        "mirror": _object(
            {
                "state": {
                    "type": "string",
                    "enum": _MIRROR_STATES,
                    "description": "Copying the results into our storage: pending (not copied yet), done "
                    "(`files` recorded, or nothing to copy), failed (given up), disabled (no storage).",
                },
                "attempts": {"type": "integer", "minimum": 0},
                "last_error": _nullable("string"),
            },
            additionalProperties=False,
        ),
        "result_object": {
            "description": "The result of a text model (any JSON value), else null.",
        },
        "error": _nullable("string", description="Why it failed (a sentence), for an unsuccessful end."),
        "error_code": _nullable("string"),
        "stage": _nullable("string", description="KIE's progress stage, when it reports one."),
        "progress": _nullable("number", description="KIE's progress, when it reports one."),
        "input": {
            "type": "object",
            "description": "The input as validated and normalised (defaults filled in).",
        },
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {
            "type": "string",
            "format": "date-time",
            "description": "Changes on every change: the SSE event id, and `since` of the WebSocket.",
        },
        "finished_at": _nullable("string", format="date-time"),
    },
    additionalProperties=False,
    description="A generation as every channel shows it (`app.generations.public.generation_json`).",
)

_ERROR = _object(
    {
        "error": {
            "type": "string",
            "description": "A stable machine name: bad_request, unauthorized, forbidden, not_found, "
            "method_not_allowed, conflict, payload_too_large, invalid_input, rate_limited, starting, "
            "unavailable, storage_unavailable, internal, ...",
        },
        "message": {"type": "string", "description": "A sentence for people."},
        "field": {
            "type": "string",
            "description": "For invalid_input: the parameter, header or dotted body path at fault "
            "(`model`, `input.prompt`, `webhook_url`, `limit`, `Idempotency-Key`, `file`, ...).",
        },
        "reason": {"type": "string", "description": "For a refused file link: missing, invalid or expired."},
        "request_id": {"type": "string", "description": "For internal: the X-Request-Id to report."},
    },
    required=["error", "message"],
    description="Every error the service answers has this shape (`app.web.errors.json_error`).",
)

_FIELD_SPEC = _object(
    {
        "type": {"type": "string", "enum": _FIELD_TYPES},
        "required": {"const": True},
        "values": {"type": "array", "description": "For enum: the allowed values."},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "For enum: a human name per value.",
        },
        "min": {"type": "number"},
        "max": {"type": "number"},
        "min_length": {"type": "integer"},
        "max_length": {"type": "integer"},
        "max_items": {"type": "integer"},
        "default": {"description": "The value used when the field is left out (any JSON value)."},
    },
    required=["type"],
    additionalProperties=False,
    description="One input field of a model.",
)

_MODEL = _object(
    {
        "id": {"type": "string"},
        "family": {"type": "string", "description": "KIE's API family (market, veo, suno, ...)."},
        "output": {"type": "string", "enum": ["image", "video", "audio", "text"]},
        "title": {"type": "string"},
        "required": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The input fields a caller must give.",
        },
        "optional": {
            "type": "object",
            "additionalProperties": _ref("FieldSpec"),
            "description": "The other input fields, by name, with their spec.",
        },
        "timeout_s": {"type": "integer", "description": "How long it may run before it is timed_out."},
    },
    additionalProperties=False,
)

_COMPONENT_HEALTH = _object(
    {
        "status": {"type": "string", "enum": ["up", "down", "starting", "disabled"]},
        "latency_ms": _nullable("number"),
        "last_error": _nullable("string"),
    },
    additionalProperties=True,
    description="A measured dependency; details (kind, mode, credits, ...) may follow.",
)

_LEADER = _object(
    {
        "lock": {"type": "string"},
        "epoch": _nullable("integer", description="Our term's epoch while we are the leader."),
        "since": _nullable("string", format="date-time"),
        "keepalive_age_s": _nullable("number"),
        "holder": {
            "oneOf": [
                {"type": "null"},
                _object(
                    {
                        "instance": {"type": "string"},
                        "epoch": {"type": "integer"},
                        "since": _nullable("string", format="date-time"),
                    }
                ),
            ],
            "description": "The leadership as recorded in the database (any instance).",
        },
        "singletons": {"type": "array", "items": {"type": "string"}},
        "last_error": _nullable("string"),
    }
)

_HEALTH = _object(
    {
        "status": {"const": "ok"},
        "role": {"type": "string", "enum": ["starting", "passive", "active"]},
        "instance": {"type": "string"},
        "version": {"type": "string"},
    }
)

_HEALTH_DETAILED = _object(
    {
        "status": {"type": "string", "enum": ["starting", "ok", "degraded"]},
        "role": {"type": "string", "enum": ["starting", "passive", "active"]},
        "instance": {"type": "string"},
        "version": {"type": "string"},
        "uptime_s": {"type": "number"},
        "leader": {"oneOf": [{"type": "null"}, _LEADER]},
        "components": _object(
            {name: _ref("ComponentHealth") for name in ("database", "kie", "storage", "telegram")}
        ),
        "callbacks": _object(
            {
                "mode": {"type": "string", "enum": ["direct", "spool"]},
                "spool_pending": {"type": "boolean"},
                "last_error": _nullable("string"),
            },
            description="How KIE callbacks are kept (absent while starting).",
        ),
    },
    required=["status", "role", "instance", "version", "uptime_s", "leader", "components"],
)

_UPLOAD = _object(
    {
        "url": {"type": "string", "format": "uri", "description": "A signed link to our copy."},
        "name": {"type": "string"},
        "content_type": {"type": "string"},
        "bytes": {"type": "integer", "minimum": 1},
        "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
    additionalProperties=False,
)

# The data of an `error` event: the generation, with `error` always set and `message` added. Spelled
# out rather than an allOf, which cannot combine with the generation's additionalProperties: false.
_ERROR_DATA = {
    **_GENERATION,
    "required": [*_GENERATION["required"], "message"],
    "properties": {
        **_GENERATION["properties"],
        "state": {"type": "string", "enum": ["failed", "timed_out", "canceled"]},
        "error": {"type": "string", "description": "error_code, or the state when there is none."},
        "message": {"type": "string", "description": "error, or the state when there is none."},
    },
    "description": "The generation, with `error` (a machine name) and `message` (a sentence) always set.",
}

_EVENT = {
    "description": "The envelope of every live event (SSE `data:`, WebSocket text message): `progress` on "
    "every change while open, then one `completed` (succeeded) or `error` (failed, timed_out, canceled; "
    "`data.error` and `data.message` always set), then, when the copies of a success land, one more "
    "`progress` with `files`.",
    "oneOf": [
        _object({"type": {"type": "string", "enum": ["progress", "completed"]}, "data": _ref("Generation")}),
        _object({"type": {"const": "error"}, "data": _ERROR_DATA}),
    ],
}

_SERVER_SENT_EVENT = _object(
    {
        "id": {"type": "string", "format": "date-time", "description": "The generation's `updated_at`."},
        "event": {"type": "string", "enum": ["progress", "completed", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": _ref("Event"),
            "description": "An Event, as JSON.",
        },
    },
    description="One server-sent event (its `id:`, `event:` and `data:` fields).",
)

_DELIVERY = _object(
    {
        "id": {"type": "string", "description": "The event's webhook-id (the same on every attempt)."},
        "event_type": {
            "type": "string",
            "enum": [f"generation.{state}" for state in [*_TERMINAL_STATES, "files_ready"]],
        },
        "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer", "minimum": 0},
        "next_attempt_at": _nullable("string", format="date-time", description="Set while pending."),
        "created_at": {"type": "string", "format": "date-time"},
        "attempts_log": {
            "type": "array",
            "items": _object(
                {
                    "at": {"type": "string", "format": "date-time"},
                    "status_code": _nullable("integer", description="The receiver's answer, if any."),
                    "latency_ms": _nullable("number"),
                    "error": _nullable("string"),
                },
                additionalProperties=False,
            ),
        },
    },
    additionalProperties=False,
    description="One outbound webhook event of a generation and its delivery attempts.",
)

_WEBHOOK_EVENT = _object(
    {
        "type": {
            "type": "string",
            "enum": [f"generation.{state}" for state in [*_TERMINAL_STATES, "files_ready"]],
        },
        "timestamp": {"type": "string", "format": "date-time"},
        "data": _ref("Generation"),
    },
    description="The body of an outbound webhook (Standard Webhooks).",
)

_CREATE = _object(
    {
        "model": {"type": "string", "minLength": 1, "description": "A model id of `GET /api/v1/models`."},
        "input": {
            "type": "object",
            "default": {},
            "description": "The model's input fields (see `required` and `optional` of its model).",
        },
        "webhook_url": {
            "type": "string",
            "format": "uri",
            "maxLength": 2048,
            "description": "Told of every end and of `files` being ready (Standard Webhooks, signed with "
            "`GET /api/v1/webhook-secret`). https (http only with WEBHOOK_ALLOW_INSECURE); a host that "
            "resolves to a loopback, private, link-local or multicast address is refused (422 naming "
            "`webhook_url`) unless WEBHOOK_ALLOW_PRIVATE.",
        },
    },
    required=["model"],
)

_TELEGRAM_UPDATE = _object(
    {"update_id": {"type": "integer", "minimum": 0}},
    additionalProperties=True,
    description="A Telegram Update object (https://core.telegram.org/bots/api#update).",
)

# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------

_OK = _json("Stored (or logged as lost): always 200, whatever happened.", _ref("Ok"))

_CALLBACK = {
    "tags": ["callbacks"],
    "summary": "KIE's result callback",
    "description": "Stored durably, then always answered 200 (a non-200 answer makes KIE retry, and storms "
    "follow). The body is read by hand up to 32 MB and stored (truncated) beyond. Any content type.",
    "security": _PUBLIC,
    "parameters": [
        {"name": "gid", "in": "query", "schema": {"type": "string"}, "description": "Our generation id."},
        {"name": "token", "in": "query", "schema": {"type": "string"}, "description": "Our callback token."},
    ],
    "requestBody": {"required": False, "content": {"application/json": {"schema": {}}}},
    "responses": {"200": _OK},
}

_FILE_RESPONSES: dict[str, Any] = {
    "200": {
        "description": "The file (`ETag` is its sha256, `Accept-Ranges: bytes`, `Cache-Control`).",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    },
    "206": {
        "description": "The requested byte range (`Content-Range`).",
        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    },
    "304": {"description": "Not modified (`If-None-Match` matched the ETag)."},
    "401": _UNAUTHORIZED,
    "403": _error("No valid link: `reason` is missing, invalid or expired.", "forbidden"),
    "404": _error("No such file (or not the key owner's).", "not_found"),
    "416": {"description": "The range cannot be satisfied (`Content-Range: bytes */size`); no body."},
    "503": _error(
        "Storage disabled or unreachable, or the database not reachable yet.",
        "storage_unavailable",
        "unavailable",
        "starting",
    ),
}

_FILE_PARAMETERS = [
    {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}},
    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
    {
        "name": "exp",
        "in": "query",
        "schema": {"type": "string"},
        "description": "Link expiry (unix seconds).",
    },
    {"name": "sig", "in": "query", "schema": {"type": "string"}, "description": "Link signature."},
    {"name": "Range", "in": "header", "schema": {"type": "string"}, "description": "`bytes=first-last`."},
    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}},
]


def _file_operation(method: str) -> dict[str, Any]:
    return {
        "tags": ["files"],
        "summary": f"{method} one of our files (a result copy or an upload)",
        "description": "Opened by a signed link (`exp` and `sig`, as in `files[].url`) without an API key, "
        "or by the owner's `X-API-Key`. Streamed; Range and ETag as browsers and players expect."
        + (" Headers only." if method == "HEAD" else ""),
        "operationId": f"{method.lower()}File",
        "security": [{}, {"ApiKey": []}],
        "parameters": _FILE_PARAMETERS,
        "responses": _FILE_RESPONSES,
    }


_PATHS: dict[str, Any] = {
    "/health": {
        "get": {
            "tags": ["operations"],
            "summary": "Liveness",
            "description": "200 at once in every role; never waits on anything.",
            "operationId": "health",
            "security": _PUBLIC,
            "responses": {"200": _json("Alive.", _ref("Health"))},
        }
    },
    "/health/detailed": {
        "get": {
            "tags": ["operations"],
            "summary": "Every dependency's measured status",
            "description": "200 even when some are down (see `status`).",
            "operationId": "healthDetailed",
            "security": _PUBLIC,
            "responses": {"200": _json("Measured.", _ref("HealthDetailed"))},
        }
    },
    "/metrics": {
        "get": {
            "tags": ["operations"],
            "summary": "Prometheus metrics",
            "operationId": "metrics",
            "security": _PUBLIC,
            "responses": {
                "200": {
                    "description": "The Prometheus text exposition format (0.0.4).",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/callbacks/kie": {"post": {**_CALLBACK, "operationId": "kieCallback"}},
    "/callbacks/kie/{tail}": {
        "post": {
            **_CALLBACK,
            "operationId": "kieCallbackTail",
            "summary": "KIE's result callback, on any path below /callbacks/kie",
            "parameters": [
                {"name": "tail", "in": "path", "required": True, "schema": {"type": "string"}},
                *_CALLBACK["parameters"],
            ],
        }
    },
    "/telegram/webhook": {
        "post": {
            "tags": ["telegram"],
            "summary": "Telegram's updates",
            "description": "Stored in the inbox, then 200; a duplicate is 200 and not stored again. 503 "
            "while the database is away, so Telegram keeps the update and sends it again.",
            "operationId": "telegramWebhook",
            "security": _PUBLIC,
            "parameters": [
                {
                    "name": "X-Telegram-Bot-Api-Secret-Token",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "The secret set with setWebhook (compared in constant time).",
                }
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("TelegramUpdate")}},
            },
            "responses": {
                "200": _json("Stored.", _ref("Ok")),
                "400": _error("Not a Telegram update.", "invalid_input"),
                "401": _error("Missing or wrong secret header.", "unauthorized"),
                "404": _error("The Telegram bot is not enabled (TELEGRAM_BOT_TOKEN).", "not_found"),
                "413": _error("The body is over 1 MB.", "payload_too_large"),
                "503": _error(
                    "The database is not reachable (or the service is starting).", "unavailable", "starting"
                ),
            },
        }
    },
    "/api/v1/openapi.json": {
        "get": _api(
            "This document",
            "The OpenAPI 3.1 document of every endpoint. No API key needed.",
            {"200": _json("The document.", {"type": "object", "required": ["openapi", "paths"]})},
            tag="documentation",
            operation_id="openapi",
            keyed=False,
        )
    },
    "/api/docs": {
        "get": _api(
            "This document as a web page",
            "A plain HTML rendering of this document, made by the server (no JavaScript, nothing from a "
            "CDN). No API key needed.",
            {
                "200": {
                    "description": "The page.",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
            tag="documentation",
            operation_id="docs",
            keyed=False,
        )
    },
    "/api/v1/models": {
        "get": _api(
            "Every model",
            "Every model we offer, in catalog order, with its required and optional input fields.",
            {"200": _json("The catalog.", _object({"models": {"type": "array", "items": _ref("Model")}}))},
            tag="models",
            operation_id="listModels",
        )
    },
    "/api/v1/generations": {
        "post": _api(
            "Start a generation",
            "Validated against the model's fields, stored, and submitted to KIE in the background. An "
            "`Idempotency-Key` makes a retry safe: the same key with the same request answers the same "
            "generation (200), with a different one 409.",
            {
                "200": _json(
                    "An earlier request with this Idempotency-Key: its generation.", _ref("Generation")
                ),
                "202": _json("Accepted and queued.", _ref("Generation")),
                "409": _error("The Idempotency-Key was used for a different request.", "conflict"),
                "413": _error("The body is over 256 KB.", "payload_too_large"),
                "422": _error(
                    "Invalid input; `field` names it (`body`, `model`, `input.<name>`, `webhook_url`, "
                    "`Idempotency-Key`, or the path of a text holding a NUL character).",
                    "invalid_input",
                ),
            },
            tag="generations",
            operation_id="createGeneration",
            parameters=[
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "schema": {"type": "string", "maxLength": _IDEMPOTENCY_KEY_MAX},
                    "description": "Any text up to 200 characters; empty counts as none.",
                }
            ],
            request_body={
                "required": True,
                "content": {"application/json": {"schema": _ref("CreateGeneration")}},
            },
        ),
        "get": _api(
            "The caller's generations, newest first",
            "Paged by `cursor`: pass the `next_cursor` of a page to get the next one.",
            {
                "200": _json(
                    "A page.",
                    _object(
                        {
                            "generations": {"type": "array", "items": _ref("Generation")},
                            "next_cursor": _nullable("string", description="null on the last page."),
                        }
                    ),
                ),
                "422": _error(
                    "`state`, `limit` or `cursor` is invalid (or a parameter holds a NUL); `field` names it.",
                    "invalid_input",
                ),
            },
            tag="generations",
            operation_id="listGenerations",
            parameters=[
                {
                    "name": "state",
                    "in": "query",
                    "schema": {"type": "string", "enum": _STATES},
                    "description": "Only generations in this state (empty counts as none).",
                },
                {"name": "model", "in": "query", "schema": {"type": "string"}, "description": "A model id."},
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                },
                {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string"},
                    "description": "A `next_cursor` this API returned.",
                },
            ],
        ),
    },
    "/api/v1/generations/{id}": {
        "get": _api(
            "One generation",
            "Reading an open generation whose next status check is far away makes it due now (at most "
            "once every 10 s). `?wait=N` waits up to N seconds (at most 60) for it to end.",
            {
                "200": _json("The generation (at its end, or when the wait ran out).", _ref("Generation")),
                "404": _error("No generation of the caller's with this id.", "not_found"),
            },
            tag="generations",
            operation_id="getGeneration",
            parameters=[
                _GENERATION_ID,
                {
                    "name": "wait",
                    "in": "query",
                    "schema": {"type": "number", "minimum": 0, "maximum": _WAIT_MAX_S, "default": 0},
                    "description": "Seconds to wait for the end (clamped to 0-60; a malformed one is 0).",
                },
            ],
        )
    },
    "/api/v1/generations/{id}/cancel": {
        "post": _api(
            "Cancel a generation",
            "Stops tracking an open generation (it ends canceled); a finished one is returned unchanged.",
            {
                "200": _json("The generation after the cancel.", _ref("Generation")),
                "404": _error("No generation of the caller's with this id.", "not_found"),
            },
            tag="generations",
            operation_id="cancelGeneration",
            parameters=[_GENERATION_ID],
        )
    },
    "/api/v1/generations/{id}/events": {
        "get": _api(
            "Follow a generation (server-sent events)",
            "`progress` on every change, then `completed` or `error`; after a `completed` whose results are "
            "still being copied, one more `progress` with `files`; then the stream ends. Each event is "
            "`id: <updated_at>`, `event: <type>`, `data: <Event JSON>`; `: keep-alive` comments every 15 s. "
            "A client that reconnects with `Last-Event-ID` gets the current state only if it changed.",
            {
                "200": {
                    "description": "The event stream; each event's `data:` is an Event.",
                    "content": {"text/event-stream": {"schema": _ref("ServerSentEvent")}},
                },
                "404": _error("No generation of the caller's with this id.", "not_found"),
            },
            tag="events",
            operation_id="generationEvents",
            parameters=[
                _GENERATION_ID,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "schema": {"type": "string"},
                    "description": "The id of the last event seen (an `updated_at`).",
                },
            ],
        )
    },
    "/api/v1/ws": {
        "get": _api(
            "Follow generations (WebSocket)",
            "An HTTP upgrade to a WebSocket whose text messages are Events (the SSE envelope). "
            "`?generation=` follows one generation (its current state first, closed after its end); "
            "without it, every generation of the caller. `?since=` (the last `data.updated_at` seen) first "
            "sends what changed after it. Heartbeats are WebSocket pings. Browsers, which cannot set headers "
            "on a WebSocket, may pass the key as `?key=`.",
            {
                "101": {
                    "description": "Switched to the WebSocket protocol (`Connection: Upgrade`, `Upgrade: "
                    "websocket`); every text message is an Event (`x-websocket-message`).",
                },
                "400": _error("Not a WebSocket upgrade request.", "bad_request"),
                "404": _error("No generation of the caller's with this id.", "not_found"),
                "422": _error(
                    "`since` is not an ISO-8601 time (or a parameter holds a NUL).", "invalid_input"
                ),
            },
            tag="events",
            operation_id="generationSocket",
            security=[{"ApiKey": []}, {"ApiKeyQuery": []}],
            extensions={"x-websocket-message": _ref("Event")},
            parameters=[
                {
                    "name": "generation",
                    "in": "query",
                    "schema": {"type": "string", "format": "uuid"},
                    "description": "Follow this generation only (a malformed id is a 404).",
                },
                {
                    "name": "since",
                    "in": "query",
                    "schema": {"type": "string", "format": "date-time"},
                    "description": "Catch up on changes after this `updated_at` first.",
                },
            ],
        )
    },
    "/api/v1/webhook-secret": {
        "get": _api(
            "The caller's webhook signing secret",
            "What the caller verifies our webhook signatures with (Standard Webhooks): WEBHOOK_SECRET when "
            "set, else one generated for this API key and kept.",
            {
                "200": _json(
                    "The secret.",
                    _object({"secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]+$"}}),
                )
            },
            tag="webhooks",
            operation_id="webhookSecret",
        )
    },
    "/api/v1/generations/{id}/deliveries": {
        "get": _api(
            "A generation's webhook deliveries",
            "Every outbound event of the generation, with its attempts (time, status code, latency, error).",
            {
                "200": _json(
                    "The deliveries.",
                    _object({"deliveries": {"type": "array", "items": _ref("Delivery")}}),
                ),
                "404": _error("No generation of the caller's with this id.", "not_found"),
            },
            tag="webhooks",
            operation_id="listDeliveries",
            parameters=[_GENERATION_ID],
        )
    },
    "/api/v1/generations/{id}/deliveries/retry": {
        "post": _api(
            "Retry a generation's failed deliveries",
            "Re-queues every failed event of the generation, due now.",
            {
                "200": _json(
                    "How many were re-queued.", _object({"requeued": {"type": "integer", "minimum": 0}})
                ),
                "404": _error("No generation of the caller's with this id.", "not_found"),
            },
            tag="webhooks",
            operation_id="retryDeliveries",
            parameters=[_GENERATION_ID],
        )
    },
    "/api/v1/uploads": {
        "post": _api(
            "Upload an input file",
            "A file (multipart, or the raw body with its content type) becomes a signed link to our copy, "
            "usable in `input.image_urls` and the like. Only images, video and audio whose bytes we "
            "recognise; a declared type must agree with the bytes. Up to 30 MB.",
            {
                "201": _json("Stored.", _ref("Upload")),
                "413": _error("Over 30 MB.", "payload_too_large"),
                "422": _error(
                    "Empty, not a recognised image, video or audio, or a type that disagrees with the bytes "
                    "(`field` is `file`).",
                    "invalid_input",
                ),
                "503": _error(
                    "Storage disabled or failing, the database not reachable yet, or starting.",
                    "storage_unavailable",
                    "unavailable",
                    "starting",
                ),
            },
            tag="uploads",
            operation_id="createUpload",
            request_body={
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": _object(
                            {"file": {"type": "string", "format": "binary"}},
                            description="The first part with a file name (or named `file`) is the file.",
                        )
                    },
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "format": "binary",
                            "description": "The raw bytes; the type is recognised from them.",
                        },
                    },
                    "image/*": {"schema": {"type": "string", "format": "binary"}},
                    "video/*": {"schema": {"type": "string", "format": "binary"}},
                    "audio/*": {"schema": {"type": "string", "format": "binary"}},
                },
            },
        )
    },
    "/files/{id}/{name}": {"get": _file_operation("GET"), "head": _file_operation("HEAD")},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "KIE Gateway",
        "version": __version__,
        "description": "Start KIE.ai generations over HTTP and get their results reliably: poll, wait, "
        "follow them live (SSE or WebSocket), or be told by a signed webhook. Every path under `/api/` needs "
        'an `X-API-Key`, except this document and `/api/docs`. Every error is `{"error", "message", ...}`. '
        "A route that is asked while the service is still starting waits up to 10 s, then answers 503 "
        "`starting` with `Retry-After`. A method a path does not serve is a 405 with `Allow`.",
    },
    "tags": [
        {"name": name}
        for name in (
            "generations",
            "events",
            "models",
            "uploads",
            "files",
            "webhooks",
            "documentation",
            "operations",
            "callbacks",
            "telegram",
        )
    ],
    "paths": _PATHS,
    "webhooks": {
        "generationEvent": {
            "post": {
                "summary": "What we send to a generation's webhook_url",
                "description": "One event per terminal state and one when `files` are ready, signed as the "
                "Standard Webhooks specification says: `webhook-signature` is `v1,<base64 HMAC-SHA256 of "
                '"id.timestamp.body">` with the secret of `GET /api/v1/webhook-secret`. A 2xx within 10 s '
                "is success; anything else is retried (WEBHOOK_RETRY_SCHEDULE), then marked failed. "
                "Redirects are not followed.",
                "parameters": [
                    {
                        "name": "webhook-id",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "The same on every retry of one event.",
                    },
                    {
                        "name": "webhook-timestamp",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "Unix seconds.",
                    },
                    {
                        "name": "webhook-signature",
                        "in": "header",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("WebhookEvent")}},
                },
                "responses": {"2XX": {"description": "Received."}},
            }
        }
    },
    "components": {
        "securitySchemes": {
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "ApiKeyQuery": {
                "type": "apiKey",
                "in": "query",
                "name": "key",
                "description": "Only on `/api/v1/ws`, for browsers.",
            },
        },
        "parameters": {
            "GenerationId": {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "format": "uuid"},
                "description": "A generation id (a malformed one is the same 404 as an unknown one).",
            }
        },
        "responses": {
            "Unauthorized": _error("Missing or invalid X-API-Key.", "unauthorized"),
            "Unavailable": _error(
                "The database is not reachable yet, or the service is still starting (`Retry-After`).",
                "unavailable",
                "starting",
            ),
        },
        "schemas": {
            "Error": _ERROR,
            "Generation": _GENERATION,
            "GenerationFile": _GENERATION_FILE,
            "CreateGeneration": _CREATE,
            "Event": _EVENT,
            "ServerSentEvent": _SERVER_SENT_EVENT,
            "Model": _MODEL,
            "FieldSpec": _FIELD_SPEC,
            "Upload": _UPLOAD,
            "Health": _HEALTH,
            "HealthDetailed": _HEALTH_DETAILED,
            "ComponentHealth": _COMPONENT_HEALTH,
            "Delivery": _DELIVERY,
            "WebhookEvent": _WEBHOOK_EVENT,
            "TelegramUpdate": _TELEGRAM_UPDATE,
            "Ok": _object({"ok": {"const": True}}),
        },
    },
}

_BODY = json.dumps(DOCUMENT, ensure_ascii=False, indent=1).encode()


async def openapi_json(request: web.Request) -> web.Response:
    """The document, as the same bytes every time."""
    return web.Response(body=_BODY, content_type="application/json", charset="utf-8")
