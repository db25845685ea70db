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

import argparse
import asyncio
import hmac
import random
import re
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from app.kie.endpoints import CREDITS_PATH, DOWNLOAD_URL_PATH, ENDPOINTS
from app.kie.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from app.kie.sim_assets import FILES
from app.logs import configure_logging, get_logger

# A fixed name: run as ``python -m`` the module is ``__main__``.
log = get_logger("app.kie.simulator")

CALLBACK_MODES = ("deliver", "drop", "duplicate", "early", "garbage", "delay")
CALLBACK_TIMEOUT_S = 15.0  # KIE's documented callback timeout
CALLBACK_RETRIES = 2  # after the first attempt: KIE gives up after 3 failed deliveries
CALLBACK_BACKOFF_S = 0.25  # doubled per retry; KIE's real interval is not documented
CREDITS = 1_000_000
FILES_PREFIX = "/_sim/files/"
# Truncated JSON: what a broken proxy or a half-written body looks like to the receiver.
GARBAGE_BODY = b'{"code": 200, "msg": "success", "data": {"taskId"'

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
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


# --- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimConfig:
    """How the simulator behaves; fixed for the life of the app."""

    latency: float
    callbacks: str
    fail_rate: float
    rate_limit_rate: float
    api_key: str | None
    webhook_hmac_key: str | None
    public_base_url: str | None


@dataclass
class SimTask:
    """One generation task, as KIE would remember it."""

    task_id: str
    family: str
    model: str | None
    body: dict[str, Any]  # the whole create request: KIE echoes it as param / paramJson
    callback_url: str | None
    created_mono: float  # event-loop clock: drives progress
    created_wall: float  # Unix seconds: what the answers report
    will_fail: bool
    fail_code: int
    seq: int  # creation order: picks between documented variants (Veo's string or list)
    files: dict[str, list[str]]  # role (video, image, audio, stream, origin) -> absolute URLs
    track_ids: list[str] = field(default_factory=list)  # Suno's per-track ids
    callback_abandoned: bool = False


@dataclass
class SimState:
    """Everything the simulator holds: config, tasks, counters, background deliveries."""

    config: SimConfig
    rng: random.Random
    tasks: dict[str, SimTask] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    windows: dict[str, deque[float]] = field(default_factory=dict)
    max_rates: dict[str, int] = field(default_factory=dict)
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    callbacks_abandoned: int = 0
    callbacks_garbage: int = 0
    seq: int = 0
    deliveries: set[asyncio.Task[None]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None

    def reset(self) -> None:
        """Forget tasks and counters and cancel pending deliveries (they belong to old tasks)."""
        for task in list(self.deliveries):
            task.cancel()
        self.tasks.clear()
        self.counts.clear()
        self.windows.clear()
        self.max_rates.clear()
        self.callbacks_sent = self.callbacks_failed = 0
        self.callbacks_abandoned = self.callbacks_garbage = 0


SIM_STATE = web.AppKey("kie_sim_state", SimState)


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

    loop = asyncio.get_running_loop()
    early = config.callbacks == "early"
    # In early mode the task is already terminal when the create answer leaves.
    shift = config.latency if early else 0.0
    model = body.get("model") if isinstance(body.get("model"), str) else _DEFAULT_MODELS.get(family)
    task_id = _new_task_id(state, family, model)
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
        files=_result_files(base, task_id, family, model),
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
            await _deliver_early(state, task)
        else:
            _spawn(state, _run_callbacks(state, task))
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
    return None


def _new_task_id(state: SimState, family: str, model: str | None) -> str:
    """Opaque ids in the forms KIE uses: market ``task_<model>_<ms>``, 32 hex digits, UUIDs."""
    while True:
        if family == "market":
            # ``kling-2.6/image-to-video`` -> ``task_kling-2.6_1765182425861``, as in KIE's examples.
            slug = _UNSAFE.sub("-", (model or "model").split("/")[0]).strip("-") or "model"
            task_id = f"task_{slug}_{int(time.time() * 1000) + state.seq}"
        elif family in ("runway", "aleph", "luma"):
            task_id = str(uuid.UUID(int=state.rng.getrandbits(128), version=4))
        else:
            task_id = f"{state.rng.getrandbits(128):032x}"
        if task_id not in state.tasks:
            return task_id


def _market_kind(model: str | None) -> str:
    """What a market model makes, guessed from its name: image, video, audio or text."""
    name = (model or "").lower()
    if "speech-to-text" in name or "transcri" in name:
        return "text"
    if any(word in name for word in ("eleven", "tts", "text-to-speech", "audio", "music", "sound")):
        return "audio"
    if any(word in name for word in ("video", "sora", "kling", "wan", "hailuo", "veo", "seedance")):
        return "video"
    return "image"


def _result_files(base: str, task_id: str, family: str, model: str | None) -> dict[str, list[str]]:
    """Absolute URLs of the task's results, one distinct name per file, fixed at create time."""
    slug = _UNSAFE.sub("-", task_id).strip("-.") or "task"

    def urls(role: str, ext: str, count: int = 1) -> list[str]:
        return [f"{base}{FILES_PREFIX}{slug}-{role}-{i}.{ext}" for i in range(count)]

    if family == "market":
        kind = _market_kind(model)
        if kind == "text":
            return {}
        return {kind: urls(kind, {"image": "png", "video": "mp4", "audio": "mp3"}[kind])}
    if family in ("veo", "luma"):
        return {"video": urls("video", "mp4")}
    if family in ("runway", "aleph"):
        return {"video": urls("video", "mp4"), "image": urls("image", "png")}
    if family == "suno":
        return {
            "audio": urls("audio", "mp3", 2),
            "stream": urls("stream", "mp3", 2),
            "image": urls("image", "png", 2),
        }
    if family == "flux_kontext":
        return {"image": urls("image", "png"), "origin": urls("origin", "png")}
    if family == "midjourney":
        return {"image": urls("image", "png", 4)}
    return {"image": urls("image", "png")}  # 4o


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
    fraction = _fraction(state, task)
    data = _STATUS_BUILDERS[family](task, fraction, state.config.latency)
    # The market task-detail page documents ``message`` where every other answer says ``msg``.
    return _envelope(200, "success", data, msg_key="message" if family == "market" else "msg")


def _fraction(state: SimState, task: SimTask) -> float:
    """How far the task is, 0..1; 1 means terminal."""
    if state.config.latency <= 0:
        return 1.0
    elapsed = asyncio.get_running_loop().time() - task.created_mono
    return max(0.0, min(1.0, elapsed / state.config.latency))


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _clock(seconds: float) -> str:
    """Veo's time format, ``2025-06-06 10:30:00``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def _param(task: SimTask) -> str:
    return orjson.dumps(task.body).decode()


def _completed(task: SimTask, latency: float) -> float:
    return task.created_wall + latency


def _fail_message(task: SimTask) -> str:
    return {
        400: "Your prompt was flagged by the content policy.",
        422: "Validation failed for the generation.",
        451: "Failed to fetch the input image.",
        500: "Internal server error",
        501: "Generation failed",
    }.get(task.fail_code, "Generation failed")


def _flag(task: SimTask, fraction: float) -> int:
    """``successFlag``: 0 running, 1 success, 2 create failed (rejected input), 3 generation failed."""
    if fraction < 1:
        return 0
    if not task.will_fail:
        return 1
    return 2 if task.fail_code in (400, 422, 451) else 3


def _running_word(fraction: float, words: tuple[str, str, str]) -> str:
    """First sixth waiting, then queued until a third, then generating."""
    if fraction < 1 / 6:
        return words[0]
    return words[1] if fraction < 1 / 3 else words[2]


def _market_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    done = fraction >= 1
    data: dict[str, Any] = {
        "taskId": task.task_id,
        "model": task.model,
        "state": _running_word(fraction, ("waiting", "queuing", "generating")),
        "param": _param(task),
        "resultJson": "",
        "failCode": "",
        "failMsg": "",
        "costTime": None,
        "completeTime": None,
        "createTime": _ms(task.created_wall),
        "updateTime": _ms(time.time()),
    }
    if done:
        data["completeTime"] = _ms(_completed(task, latency))
        data["costTime"] = round(latency)  # seconds, as in the documented example
        if task.will_fail:
            data.update(state="fail", failCode="500", failMsg="Internal server error")
        else:
            data.update(state="success", resultJson=_market_result_json(task))
    return data


def _market_result_json(task: SimTask) -> str:
    """``resultJson`` is a string holding JSON; text models return an object instead of URLs."""
    if not task.files:
        return orjson.dumps({"resultObject": {"text": "simulated transcript", "language": "en"}}).decode()
    urls = [url for role_urls in task.files.values() for url in role_urls]
    return orjson.dumps({"resultUrls": urls}).decode()


def _veo_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    flag = _flag(task, fraction)
    return {
        "taskId": task.task_id,
        "paramJson": _param(task),
        "completeTime": _clock(_completed(task, latency)) if flag else None,
        "response": {
            "taskId": task.task_id,
            "resultUrls": task.files["video"],
            "originUrls": [],
            "resolution": "720p",
        }
        if flag == 1
        else None,
        "successFlag": flag,
        "errorCode": task.fail_code if flag > 1 else None,
        "errorMessage": _fail_message(task) if flag > 1 else "",
        "createTime": _clock(task.created_wall),
        "fallbackFlag": False,
    }


def _runway_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    """Runway's record-detail; Aleph's record-info has the same shape."""
    word = _running_word(fraction, ("wait", "queueing", "generating"))
    if fraction >= 1:
        word = "fail" if task.will_fail else "success"
    return {
        "taskId": task.task_id,
        "parentTaskId": "",
        "generateParam": task.body,
        "state": word,
        "generateTime": _clock(task.created_wall),
        "videoInfo": {
            "videoId": task.task_id.replace("-", "")[:16],
            "taskId": task.task_id,
            "videoUrl": task.files["video"][0],
            "imageUrl": task.files["image"][0],
        }
        if word == "success"
        else None,
        "expireFlag": 0,
        "failMsg": _fail_message(task) if word == "fail" else "",
    }


def _suno_tracks(task: SimTask, stage: str, *, snake: bool) -> list[dict[str, Any]]:
    """Suno's two tracks at ``stage`` (text, first, complete): audio appears only when complete."""
    tracks = []
    for i, track_id in enumerate(task.track_ids):
        audio = task.files["audio"][i] if stage == "complete" else ""
        stream = task.files["stream"][i] if stage in ("first", "complete") else ""
        image = task.files["image"][i] if stage in ("first", "complete") else ""
        values = {
            "id": track_id,
            "audio_url": audio,
            "source_audio_url": audio,
            "stream_audio_url": stream,
            "source_stream_audio_url": stream,
            "image_url": image,
            "source_image_url": image,
            "prompt": str(task.body.get("prompt", "")),
            "model_name": "chirp-v4-5",
            "title": f"Simulated song {i + 1}",
            "tags": "simulated",
            "createTime": _ms(task.created_wall),
            "duration": 198.44 if stage == "complete" else None,
        }
        tracks.append(values if snake else {_camel(key): value for key, value in values.items()})
    return tracks


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.title() for part in rest)


def _suno_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    if fraction >= 1:
        status, stage = ("GENERATE_AUDIO_FAILED", None) if task.will_fail else ("SUCCESS", "complete")
    elif fraction >= 2 / 3 and not task.will_fail:
        status, stage = "FIRST_SUCCESS", "first"
    elif fraction >= 1 / 3:
        status, stage = "TEXT_SUCCESS", "text"
    else:
        status, stage = "PENDING", None
    return {
        "taskId": task.task_id,
        "parentMusicId": "",
        "param": _param(task),
        "response": {"taskId": task.task_id, "sunoData": _suno_tracks(task, stage, snake=False)}
        if stage
        else None,
        "status": status,
        "type": task.model,
        "operationType": "generate",
        "errorCode": task.fail_code if status == "GENERATE_AUDIO_FAILED" else None,
        "errorMessage": _fail_message(task) if status == "GENERATE_AUDIO_FAILED" else None,
    }


def _4o_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    done = fraction >= 1
    failed = done and task.will_fail
    return {
        "taskId": task.task_id,
        "paramJson": _param(task),
        "completeTime": _ms(_completed(task, latency)) if done else None,
        "response": {"resultUrls": task.files["image"]} if done and not failed else None,
        # 4o has no flag 3: a failed generation is 2 with status GENERATE_FAILED.
        "successFlag": (2 if failed else 1) if done else 0,
        "status": ("GENERATE_FAILED" if failed else "SUCCESS") if done else "GENERATING",
        "progress": f"{fraction:.2f}",
        "errorCode": task.fail_code if failed else None,
        "errorMessage": _fail_message(task) if failed else "",
        "createTime": _ms(task.created_wall),
    }


def _flag_record(
    task: SimTask,
    flag: int,
    latency: float,
    result_key: str,
    result: Any,
    *,
    succeeded: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    """The record-info shape the successFlag families share; only where the result sits differs."""
    failed = flag in (2, 3)
    return {
        "taskId": task.task_id,
        "paramJson": _param(task),
        "completeTime": _ms(_completed(task, latency)) if flag else None,
        result_key: result if flag in succeeded else None,
        "successFlag": flag,
        "errorCode": task.fail_code if failed else None,
        "errorMessage": _fail_message(task) if failed else "",
        "createTime": _ms(task.created_wall),
    }


def _flux_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    result = {"originImageUrl": task.files["origin"][0], "resultImageUrl": task.files["image"][0]}
    return _flag_record(task, _flag(task, fraction), latency, "response", result)


def _midjourney_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    result = {"resultUrls": [{"resultUrl": url} for url in task.files["image"]]}
    record = _flag_record(task, _flag(task, fraction), latency, "resultInfoJson", result)
    return {"taskType": str(task.body.get("taskType", "mj_txt2img")), **record}


def _luma_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    flag = _flag(task, fraction)
    if flag == 1 and task.callback_abandoned:
        flag = 4  # Luma's "generated, but the callback failed"
    result = {"taskId": task.task_id, "originUrls": [], "resultUrls": task.files["video"]}
    return _flag_record(task, flag, latency, "response", result, succeeded=(1, 4))


StatusBuilder = Callable[[SimTask, float, float], dict[str, Any]]

_STATUS_BUILDERS: dict[str, StatusBuilder] = {
    "market": _market_status,
    "veo": _veo_status,
    "runway": _runway_status,
    "aleph": _runway_status,
    "suno": _suno_status,
    "4o": _4o_status,
    "flux_kontext": _flux_status,
    "midjourney": _midjourney_status,
    "luma": _luma_status,
}


# --- callbacks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCallback:
    """One callback of a task: when (fraction of latency), what, and whether it is the final one."""

    at: float
    payload: dict[str, Any]
    terminal: bool


def callback_plan(task: SimTask, latency: float) -> list[PlannedCallback]:
    """The callbacks ``task`` sends, in order: Suno's stages, or one terminal callback."""
    if task.family == "suno":
        plan = [PlannedCallback(1 / 3, _suno_callback(task, "text"), False)]
        if task.will_fail:
            plan.append(PlannedCallback(1.0, _suno_callback(task, "error"), True))
        else:
            plan.append(PlannedCallback(2 / 3, _suno_callback(task, "first"), False))
            plan.append(PlannedCallback(1.0, _suno_callback(task, "complete"), True))
        return plan
    return [PlannedCallback(1.0, _TERMINAL_CALLBACKS[task.family](task, latency), True)]


def _suno_callback(task: SimTask, stage: str) -> dict[str, Any]:
    if stage == "error":
        return {
            "code": task.fail_code,
            "msg": _fail_message(task),
            "data": {"callbackType": "error", "task_id": task.task_id, "data": None},
        }
    messages = {
        "text": "Text generation completed.",
        "first": "First track generation completed.",
        "complete": "All generated successfully.",
    }
    return {
        "code": 200,
        "msg": messages[stage],
        "data": {
            "callbackType": stage,
            "task_id": task.task_id,
            "data": _suno_tracks(task, stage, snake=True),
        },
    }


def _market_callback(task: SimTask, latency: float) -> dict[str, Any]:
    data = _market_status(task, 1.0, latency)
    data.pop("updateTime")
    data.update(consumeCredits=0 if task.will_fail else 100, remainedCredits=CREDITS)
    if task.will_fail:
        return {"code": 501, "msg": "Playground task failed.", "data": data}
    data.update(failCode=None, failMsg=None)
    return {"code": 200, "msg": "Playground task completed successfully.", "data": data}


def _veo_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        data = {"taskId": task.task_id, "info": None, "fallbackFlag": False}
        return {"code": task.fail_code, "msg": _fail_message(task), "data": data}
    urls: list[str] | str = task.files["video"]
    if task.seq % 2 == 0:
        urls = orjson.dumps(urls).decode()  # both forms are documented: every other task gets a string
    info = {"resultUrls": urls, "originUrls": [], "resolution": "720p"}
    data = {"taskId": task.task_id, "info": info, "fallbackFlag": False}
    return {"code": 200, "msg": "Veo3.1 video generated successfully.", "data": data}


def _runway_callback(task: SimTask, latency: float) -> dict[str, Any]:
    video_id = task.task_id.replace("-", "")[:16]
    if task.will_fail:
        data = {"task_id": task.task_id, "video_id": video_id, "video_url": "", "image_url": ""}
        return {"code": task.fail_code, "msg": _fail_message(task), "data": data}
    data = {
        "task_id": task.task_id,
        "video_id": video_id,
        "video_url": task.files["video"][0],
        "image_url": task.files["image"][0],
    }
    return {"code": 200, "msg": "All generated successfully.", "data": data}


def _aleph_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        return {"code": task.fail_code, "msg": _fail_message(task), "data": None, "taskId": task.task_id}
    data = {"result_video_url": task.files["video"][0], "result_image_url": task.files["image"][0]}
    return {"code": 200, "msg": "All generated successfully.", "data": data, "taskId": task.task_id}


def _4o_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        return {
            "code": task.fail_code,
            "msg": _fail_message(task),
            "data": {"taskId": task.task_id, "info": None},
        }
    data = {"taskId": task.task_id, "info": {"result_urls": task.files["image"]}}
    return {"code": 200, "msg": "Image generated successfully.", "data": data}


def _flux_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        data = {"taskId": task.task_id, "info": {"originImageUrl": "", "resultImageUrl": ""}}
        return {"code": task.fail_code, "msg": _fail_message(task), "data": data}
    info = {"originImageUrl": task.files["origin"][0], "resultImageUrl": task.files["image"][0]}
    return {
        "code": 200,
        "msg": "Image generated successfully.",
        "data": {"taskId": task.task_id, "info": info},
    }


def _result_urls_callback(role: str) -> Callable[[SimTask, float], dict[str, Any]]:
    """Midjourney and Luma: ``data.resultUrls``, empty on failure."""

    def build(task: SimTask, latency: float) -> dict[str, Any]:
        if task.will_fail:
            data = {"taskId": task.task_id, "resultUrls": []}
            return {"code": task.fail_code, "msg": _fail_message(task), "data": data}
        return {
            "code": 200,
            "msg": "success",
            "data": {"taskId": task.task_id, "resultUrls": task.files[role]},
        }

    return build


_TERMINAL_CALLBACKS: dict[str, Callable[[SimTask, float], dict[str, Any]]] = {
    "market": _market_callback,
    "veo": _veo_callback,
    "runway": _runway_callback,
    "aleph": _aleph_callback,
    "4o": _4o_callback,
    "flux_kontext": _flux_callback,
    "midjourney": _result_urls_callback("image"),
    "luma": _result_urls_callback("video"),
}


def _spawn(state: SimState, coro: Coroutine[Any, Any, None]) -> None:
    """Run a delivery in the background, tracked so cleanup (and reset) can cancel it."""
    task = asyncio.create_task(coro)
    state.deliveries.add(task)
    task.add_done_callback(_delivery_done(state))


def _delivery_done(state: SimState) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        state.deliveries.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Deliveries catch their own errors; this is a simulator bug, and it must not go unseen.
            log.error("kie_sim.delivery_crashed", error=repr(task.exception()))

    return done


async def _run_callbacks(state: SimState, task: SimTask) -> None:
    """Send the task's callbacks at their times (``delay`` mode: ``latency`` later than due)."""
    config = state.config
    loop = asyncio.get_running_loop()
    late = config.latency if config.callbacks == "delay" else 0.0
    for planned in callback_plan(task, config.latency):
        wait = task.created_mono + planned.at * config.latency + late - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        body = orjson.dumps(planned.payload)
        if planned.terminal and config.callbacks == "garbage":
            await _post(state, task, GARBAGE_BODY, kind="garbage")
        await _deliver(state, task, body, stage=_stage_of(planned))
        if planned.terminal and config.callbacks == "duplicate":
            await _deliver(state, task, body, stage=_stage_of(planned))


async def _deliver_early(state: SimState, task: SimTask) -> None:
    """``early`` mode: every callback goes out before the create answer does (one attempt each).

    A failed attempt is retried in the background, so a dead receiver holds the create answer up
    for one timeout at most.
    """
    for planned in callback_plan(task, state.config.latency):
        body = orjson.dumps(planned.payload)
        if not await _post(state, task, body, kind=_stage_of(planned)):
            _spawn(state, _deliver(state, task, body, stage=_stage_of(planned), first_attempt=1))


def _stage_of(planned: PlannedCallback) -> str:
    data = planned.payload.get("data")
    if isinstance(data, dict) and "callbackType" in data:
        return str(data["callbackType"])
    return "terminal" if planned.terminal else "progress"


async def _deliver(
    state: SimState, task: SimTask, body: bytes, *, stage: str, first_attempt: int = 0
) -> bool:
    """POST one callback, retrying up to ``CALLBACK_RETRIES`` times; False once it gave up."""
    for attempt in range(first_attempt, 1 + CALLBACK_RETRIES):
        if attempt:
            await asyncio.sleep(CALLBACK_BACKOFF_S * 2 ** (attempt - 1))
        if await _post(state, task, body, kind=stage, attempt=attempt):
            return True
    state.callbacks_abandoned += 1
    task.callback_abandoned = True
    log.warning("kie_sim.callback_abandoned", task_id=task.task_id, family=task.family, stage=stage)
    return False


async def _post(state: SimState, task: SimTask, body: bytes, *, kind: str, attempt: int = 0) -> bool:
    """One POST to the task's callBackUrl; True on a 2xx answer. Never raises (but can be cancelled)."""
    assert task.callback_url is not None and state.session is not None
    headers = {"Content-Type": "application/json"}
    if state.config.webhook_hmac_key:
        stamp = int(time.time())
        headers[TIMESTAMP_HEADER] = str(stamp)
        headers[SIGNATURE_HEADER] = sign(state.config.webhook_hmac_key, task.task_id, stamp)
    # The host only: the callback URL's query carries the receiver's per-task secret.
    target = URL(task.callback_url).host
    fields = {
        "task_id": task.task_id,
        "family": task.family,
        "stage": kind,
        "attempt": attempt,
        "host": target,
    }
    try:
        async with state.session.post(
            task.callback_url,
            data=body,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S),
        ) as response:
            await response.read()
            status = response.status
    except Exception as exc:  # a broken receiver is the receiver's problem: log it, never crash
        if kind != "garbage":
            state.callbacks_failed += 1
        log.warning("kie_sim.callback_failed", error=f"{type(exc).__name__}: {exc}", **fields)
        return False
    if kind == "garbage":
        state.callbacks_garbage += 1
        log.info("kie_sim.garbage_sent", status=status, **fields)
        return True
    if 200 <= status < 300:
        state.callbacks_sent += 1
        log.info("kie_sim.callback_sent", status=status, **fields)
        return True
    state.callbacks_failed += 1
    log.warning("kie_sim.callback_failed", status=status, **fields)
    return False


# --- files, credits, download links and the simulator's own endpoints ----------------------------


async def _serve_file(request: web.Request) -> web.StreamResponse:
    """A tiny real PNG, MP4 or MP3, whatever the name before the extension."""
    name = request.match_info["name"]
    match = _FILE_NAME.match(name)
    if match is None:
        raise web.HTTPNotFound()
    content_type, payload = FILES[match.group(1)]
    return web.Response(body=payload, content_type=content_type)


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


# --- command line ------------------------------------------------------------------------------


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m app.kie.simulator", description="A KIE.ai-compatible server for tests and benchmarks."
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds from create to done")
    parser.add_argument("--callbacks", choices=CALLBACK_MODES, default="deliver")
    parser.add_argument("--fail-rate", type=_rate, default=0.0)
    parser.add_argument("--rate-limit-rate", type=_rate, default=0.0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--webhook-hmac-key", default=None)
    parser.add_argument("--public-base-url", default=None, help="origin for result URLs")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    configure_logging(args.log_level)
    app = make_app(
        latency=args.latency,
        callbacks=args.callbacks,
        fail_rate=args.fail_rate,
        rate_limit_rate=args.rate_limit_rate,
        api_key=args.api_key,
        webhook_hmac_key=args.webhook_hmac_key,
        public_base_url=args.public_base_url,
        seed=args.seed,
    )
    log.info(
        "kie_sim.starting",
        host=args.host,
        port=args.port,
        latency=args.latency,
        callbacks=args.callbacks,
        fail_rate=args.fail_rate,
        rate_limit_rate=args.rate_limit_rate,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
