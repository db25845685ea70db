"""The callbacks each family sends, in KIE's documented shapes: Suno's three stages, or one
terminal callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from app.kie.simulator.state import CREDITS, SimTask
from app.kie.simulator.statuses import fail_message, market_status, suno_tracks


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
            "msg": fail_message(task),
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
            "data": suno_tracks(task, stage, snake=True),
        },
    }


def _market_callback(task: SimTask, latency: float) -> dict[str, Any]:
    data = market_status(task, 1.0, latency)
    data.pop("updateTime")
    data.update(consumeCredits=0 if task.will_fail else 100, remainedCredits=CREDITS)
    if task.will_fail:
        return {"code": 501, "msg": "Playground task failed.", "data": data}
    data.update(failCode=None, failMsg=None)
    return {"code": 200, "msg": "Playground task completed successfully.", "data": data}


def _veo_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        failed = {"taskId": task.task_id, "info": None, "fallbackFlag": False}
        return {"code": task.fail_code, "msg": fail_message(task), "data": failed}
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
        return {"code": task.fail_code, "msg": fail_message(task), "data": data}
    data = {
        "task_id": task.task_id,
        "video_id": video_id,
        "video_url": task.files["video"][0],
        "image_url": task.files["image"][0],
    }
    return {"code": 200, "msg": "All generated successfully.", "data": data}


def _aleph_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        return {"code": task.fail_code, "msg": fail_message(task), "data": None, "taskId": task.task_id}
    data = {"result_video_url": task.files["video"][0], "result_image_url": task.files["image"][0]}
    return {"code": 200, "msg": "All generated successfully.", "data": data, "taskId": task.task_id}


def _4o_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        return {
            "code": task.fail_code,
            "msg": fail_message(task),
            "data": {"taskId": task.task_id, "info": None},
        }
    data = {"taskId": task.task_id, "info": {"result_urls": task.files["image"]}}
    return {"code": 200, "msg": "Image generated successfully.", "data": data}


def _flux_callback(task: SimTask, latency: float) -> dict[str, Any]:
    if task.will_fail:
        data = {"taskId": task.task_id, "info": {"originImageUrl": "", "resultImageUrl": ""}}
        return {"code": task.fail_code, "msg": fail_message(task), "data": data}
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
            return {"code": task.fail_code, "msg": fail_message(task), "data": data}
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
