"""A KIE.ai-compatible server for tests, benchmarks and local runs (``python -m app.kie.simulator``).

The live API is not reachable from our machines, so this simulator is how the gateway meets KIE:
every family's create and status endpoints with their own envelopes, status vocabularies and
callback shapes (docs/kie-api.md), business codes inside HTTP 200, opaque task ids of several
forms, and the unpleasant parts on demand: failed generations, rate limiting, lost, duplicated,
early, garbage and late callbacks, and optional webhook signatures.

Progress is driven by time: a task is queued for the first third of ``latency``, generating until
``latency`` and terminal from then on. Result URLs point at tiny real files served under
``/_sim/files/``. ``/_sim/stats``, ``/_sim/rates`` and ``/_sim/reset`` let tests see (and clear)
what the client did. All state lives on the application (``SIM_STATE``), none in the module.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import re
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from app.kie.endpoints import CREDITS_PATH, DOWNLOAD_URL_PATH, ENDPOINTS
from app.kie.simulator.assets import FILES
from app.kie.simulator.delivery import deliver_early, run_callbacks, spawn
from app.kie.simulator.state import (
    CREDITS,
    FILES_PREFIX,
    SIM_STATE,
    SimConfig,
    SimState,
    SimTask,
    new_task_id,
    result_files,
)
from app.kie.simulator.statuses import STATUS_BUILDERS, fraction_done
from app.logs import get_logger

log = get_logger("app.kie.simulator")

CALLBACK_MODES = ("deliver", "drop", "duplicate", "early", "garbage", "delay")
_CHUNK = 256 * 1024

# What KIE says when it refuses a create (the shared error list of KIE's market pages).
_REFUSALS = {
    400: "Your prompt was flagged by Website as violating content policies.",
    402: "Credits insufficient",
    404: "Not Found",
    422: "Validation Error - The request parameters failed validation checks",
    429: "Rate Limited - Request limit has been exceeded for this resource",
    433: "Request Limit - Sub-key Usage Exceeds Limit",
    451: "Failed to fetch the image. Kindly verify any access limits set by you or your service provider.",
    455: "Service Unavailable - System is currently undergoing maintenance",
    500: "Server Error - An unexpected error occurred while processing the request",
    501: "Generation Failed - Content generation task failed",
    505: "Feature Disabled - The requested feature is currently disabled",
}

# Failure codes each family's callbacks use (docs/kie-api.md, "Callbacks"); one is drawn per task.
_FAIL_CODES: dict[str, tuple[int, ...]] = {
    "market": (501,),
    "veo": (400, 422, 500, 501),
    "runway": (400, 500),
    "aleph": (400, 500),
    "suno": (400, 451, 500, 501),
    "4o": (400, 451, 500),
    "flux_kontext": (400, 500, 501),
    "midjourney": (500,),
    "luma": (500,),
}
_DEFAULT_MODELS = {"veo": "veo3_fast", "suno": "V4_5", "flux_kontext": "flux-kontext-pro"}
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(png|mp4|mp3)$")


# --- the application ---------------------------------------------------------------------------


def make_app(
    *,
    latency: float = 1.0,
    callbacks: str = "deliver",
    fail_rate: float = 0.0,
    rate_limit_rate: float = 0.0,
    api_key: str | None = None,
    webhook_hmac_key: str | None = None,
    public_base_url: str | None = None,
    seed: int | None = None,
    create_code: int | None = None,
    result_bytes: int | None = None,
    file_rate: float | None = None,
) -> web.Application:
    """Build the simulator app; see the module docstring and docs/kie-api.md for what it serves."""
    if callbacks not in CALLBACK_MODES:
        raise ValueError(f"callbacks must be one of {', '.join(CALLBACK_MODES)}, not {callbacks!r}")
    if latency < 0:
        raise ValueError("latency must be >= 0")
    config = SimConfig(
        latency=latency,
        callbacks=callbacks,
        fail_rate=fail_rate,
        rate_limit_rate=rate_limit_rate,
        api_key=api_key,
        webhook_hmac_key=webhook_hmac_key,
        public_base_url=public_base_url.rstrip("/") if public_base_url else None,
        create_code=create_code,
        result_bytes=result_bytes,
        file_rate=file_rate,
    )
    app = web.Application(middlewares=[_count_requests, _check_auth])
    app[SIM_STATE] = SimState(config=config, rng=random.Random(seed))
    app.cleanup_ctx.append(_callback_session)

    for family, endpoints in ENDPOINTS.items():
        app.router.add_post(endpoints.create, _create_handler(family))
        app.router.add_get(endpoints.status, _status_handler(family))
    app.router.add_get(CREDITS_PATH, _credits)
    app.router.add_post(DOWNLOAD_URL_PATH, _download_url)
    app.router.add_get(FILES_PREFIX + "{name}", _serve_file)
    app.router.add_get("/_sim/stats", _stats)
    app.router.add_get("/_sim/rates", _rates)
    app.router.add_post("/_sim/reset", _reset)
    return app


async def _callback_session(app: web.Application) -> AsyncIterator[None]:
    """One shared client session for callbacks; deliveries still running are cancelled first."""
    state = app[SIM_STATE]
    state.session = aiohttp.ClientSession()
    try:
        yield
    finally:
        pending = list(state.deliveries)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await state.session.close()
        state.session = None


def _envelope(code: int, msg: str, data: Any = None, *, msg_key: str = "msg") -> web.Response:
    """KIE's envelope, always in an HTTP 200: the business status is ``code``."""
    return web.json_response({"code": code, msg_key: msg, "data": data}, dumps=_dumps)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request per ``METHOD /path`` and track the busiest 1-second window of each."""
    state = request.app[SIM_STATE]
    key = f"{request.method} {request.path}"
    state.counts[key] += 1
    now = asyncio.get_running_loop().time()
    window = state.windows.setdefault(key, deque())
    window.append(now)
    # The busiest window always ends at some request, so checking at every arrival is exact.
    while window and window[0] <= now - 1.0:
        window.popleft()
    if len(window) > state.max_rates.get(key, 0):
        state.max_rates[key] = len(window)
    return await handler(request)


@web.middleware
async def _check_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """KIE's API wants ``Authorization: Bearer <key>``; a bad key is code 401 inside an HTTP 200."""
    if not request.path.startswith("/api/"):
        return await handler(request)  # files and the simulator's own endpoints are open
    expected = request.app[SIM_STATE].config.api_key
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    ok = scheme.lower() == "bearer" and bool(token)
    if ok and expected is not None:
        ok = hmac.compare_digest(token.encode(), expected.encode())
    if not ok:
        log.info("kie_sim.unauthorized", path=request.path)
        return _envelope(401, "You do not have access permissions")
    return await handler(request)


def _rate_limited(state: SimState) -> bool:
    # Drawn only when enabled, so a seed gives the same failures with and without rate limiting off.
    return state.config.rate_limit_rate > 0 and state.rng.random() < state.config.rate_limit_rate


# --- create ------------------------------------------------------------------------------------


def _create_handler(family: str) -> Handler:
    async def create(request: web.Request) -> web.StreamResponse:
        return await _create(request, family)

    create.__doc__ = f"Create a {family} task."
    return create


async def _create(request: web.Request, family: str) -> web.StreamResponse:
    state = request.app[SIM_STATE]
    config = state.config
    if _rate_limited(state):
        log.info("kie_sim.rate_limited", family=family, endpoint="create")
        return _envelope(429, "rate limited")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _envelope(400, "request body is not valid JSON")
    if not isinstance(body, dict):
        return _envelope(400, "request body must be a JSON object")
    problem = _validate(family, body)
    if problem:
        return _envelope(422, problem)
    if config.create_code is not None and config.create_code != 200:
        return _envelope(config.create_code, _REFUSALS.get(config.create_code, "refused by the simulator"))

    loop = asyncio.get_running_loop()
    early = config.callbacks == "early"
    # In early mode the task is already terminal when the create answer leaves.
    shift = config.latency if early else 0.0
    model = body.get("model") if isinstance(body.get("model"), str) else _DEFAULT_MODELS.get(family)
    task_id = new_task_id(state, family, model)
    will_fail = config.fail_rate > 0 and state.rng.random() < config.fail_rate
    base = config.public_base_url or str(request.url.origin())
    state.seq += 1
    task = SimTask(
        task_id=task_id,
        family=family,
        model=model,
        body=body,
        callback_url=body.get("callBackUrl") or None,
        created_mono=loop.time() - shift,
        created_wall=time.time() - shift,
        will_fail=will_fail,
        fail_code=state.rng.choice(_FAIL_CODES[family]) if will_fail else 0,
        seq=state.seq,
        files=result_files(base, task_id, family, model),
        track_ids=[str(uuid.UUID(int=state.rng.getrandbits(128), version=4)) for _ in range(2)]
        if family == "suno"
        else [],
    )
    state.tasks[task_id] = task
    log.info(
        "kie_sim.task_created",
        family=family,
        task_id=task_id,
        model=model,
        will_fail=will_fail,
        callback=task.callback_url is not None,
    )
    if task.callback_url is not None and config.callbacks != "drop":
        if early:
            await deliver_early(state, task)
        else:
            spawn(state, run_callbacks(state, task))
    return _envelope(200, "success", {"taskId": task_id})


def _validate(family: str, body: dict[str, Any]) -> str | None:
    """The minimal checks KIE makes; None when the body is acceptable."""
    callback = body.get("callBackUrl")
    if callback not in (None, ""):
        if not isinstance(callback, str) or not re.match(r"^https?://\S+$", callback):
            return "callBackUrl must be an http(s) URL"
    elif family == "suno":
        return "callBackUrl is required"
    if family == "market":
        if not isinstance(body.get("model"), str) or not body["model"].strip():
            return "model is required"
        if not isinstance(body.get("input"), dict):
            return "input must be an object"
        # "Currently only Turbo v2.5 and Flash v2.5 support language enforcement. For other models,
        # an error will be returned if language code is provided." (KIE does not say which code.)
        if body["model"] == "elevenlabs/text-to-speech-multilingual-v2" and body["input"].get(
            "language_code"
        ):
            return "language_code is only supported by Turbo v2.5 and Flash v2.5"
    if family == "veo" and body.get("generationType") == "REFERENCE_2_VIDEO" and body.get("model") == "veo3":
        return "REFERENCE_2_VIDEO mode currently supports the veo3_fast and veo3_lite models"
    if family == "4o" and not body.get("size"):
        return "size is required"
    return None


# --- status ------------------------------------------------------------------------------------


def _status_handler(family: str) -> Handler:
    async def status(request: web.Request) -> web.StreamResponse:
        return await _status(request, family)

    status.__doc__ = f"Report on a {family} task."
    return status


async def _status(request: web.Request, family: str) -> web.StreamResponse:
    state = request.app[SIM_STATE]
    if _rate_limited(state):
        log.info("kie_sim.rate_limited", family=family, endpoint="status")
        return _envelope(429, "rate limited")
    task_id = request.query.get("taskId", "").strip()
    if not task_id:
        return _envelope(422, "taskId is required")
    task = state.tasks.get(task_id)
    if task is None or task.family != family:  # KIE keeps records per family
        return _envelope(422, "record is null")
    fraction = fraction_done(state, task)
    data = STATUS_BUILDERS[family](task, fraction, state.config.latency)
    # The market task-detail page documents ``message`` where every other answer says ``msg``.
    return _envelope(200, "success", data, msg_key="message" if family == "market" else "msg")


# --- files, credits, download links and the simulator's own endpoints ----------------------------


async def _serve_file(request: web.Request) -> web.StreamResponse:
    """A tiny real PNG, MP4 or MP3, whatever the name before the extension.

    With ``result_bytes`` the file is that large (the real file, then zero padding), generated as
    it is sent; with ``file_rate`` it is sent at that many bytes per second.
    """
    name = request.match_info["name"]
    match = _FILE_NAME.match(name)
    if match is None:
        raise web.HTTPNotFound()
    content_type, payload = FILES[match.group(1)]
    config = request.app[SIM_STATE].config
    size = max(len(payload), config.result_bytes or 0)
    if size == len(payload) and config.file_rate is None:
        return web.Response(body=payload, content_type=content_type)
    response = web.StreamResponse(headers={"Content-Type": content_type})
    response.content_length = size
    await response.prepare(request)
    await response.write(payload)
    padding = bytes(_CHUNK)
    sent = len(payload)
    started = asyncio.get_running_loop().time()
    while sent < size:
        chunk = padding[: min(_CHUNK, size - sent)]
        await response.write(chunk)
        sent += len(chunk)
        if config.file_rate:
            ahead = sent / config.file_rate - (asyncio.get_running_loop().time() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
    await response.write_eof()
    return response


async def _credits(request: web.Request) -> web.StreamResponse:
    """``data`` is the credit balance, an integer."""
    return _envelope(200, "success", CREDITS)


async def _download_url(request: web.Request) -> web.StreamResponse:
    """A fresh link to one of our own files; 422 for URLs the simulator did not make."""
    state = request.app[SIM_STATE]
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _envelope(400, "request body is not valid JSON")
    raw = body.get("url") if isinstance(body, dict) else None
    if not isinstance(raw, str):
        return _envelope(422, "url is required")
    try:
        url = URL(raw)
    except ValueError:
        return _envelope(422, "url is not valid")
    origins = {str(request.url.origin())}
    if state.config.public_base_url:
        origins.add(str(URL(state.config.public_base_url).origin()))
    ours = (
        url.absolute
        and str(url.origin()) in origins
        and url.path.startswith(FILES_PREFIX)
        and _FILE_NAME.match(url.path[len(FILES_PREFIX) :]) is not None
    )
    if not ours:
        return _envelope(422, "The URL was not generated by KIE")
    fresh = url.with_query({"stamp": str(time.time_ns())})
    return _envelope(200, "success", str(fresh))


async def _stats(request: web.Request) -> web.StreamResponse:
    """Requests served per ``METHOD /path``, plus callback counters."""
    state = request.app[SIM_STATE]
    stats: dict[str, int] = dict(state.counts)
    stats.update(
        callbacks_sent=state.callbacks_sent,
        callbacks_failed=state.callbacks_failed,
        callbacks_abandoned=state.callbacks_abandoned,
        callbacks_garbage=state.callbacks_garbage,
    )
    return web.json_response(stats, dumps=_dumps)


async def _rates(request: web.Request) -> web.StreamResponse:
    """The most requests seen in any 1-second window, per ``METHOD /path``."""
    return web.json_response(dict(request.app[SIM_STATE].max_rates), dumps=_dumps)


async def _reset(request: web.Request) -> web.StreamResponse:
    """Clear tasks, counters and pending callbacks."""
    request.app[SIM_STATE].reset()
    log.info("kie_sim.reset")
    return web.json_response({"ok": True})
