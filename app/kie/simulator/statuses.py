"""What each family's status endpoint answers about a task, in KIE's own shapes and vocabularies.

Progress is driven by time: a task is queued for the first third of the latency, generating until
the latency is over and terminal from then on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from app.kie.simulator.state import SimState, SimTask


def fraction_done(state: SimState, task: SimTask) -> float:
    """How far the task is, 0..1; 1 means terminal."""
    if state.config.latency <= 0:
        return 1.0
    elapsed = asyncio.get_running_loop().time() - task.created_mono
    return max(0.0, min(1.0, elapsed / state.config.latency))


def ms(seconds: float) -> int:
    return int(seconds * 1000)


def clock(seconds: float) -> str:
    """Veo's time format, ``2025-06-06 10:30:00``."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def param_json(task: SimTask) -> str:
    return orjson.dumps(task.body).decode()


def completed_at(task: SimTask, latency: float) -> float:
    return task.created_wall + latency


def fail_message(task: SimTask) -> str:
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


def market_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    done = fraction >= 1
    data: dict[str, Any] = {
        "taskId": task.task_id,
        "model": task.model,
        "state": _running_word(fraction, ("waiting", "queuing", "generating")),
        "param": param_json(task),
        "resultJson": "",
        "failCode": "",
        "failMsg": "",
        "costTime": None,
        "completeTime": None,
        "createTime": ms(task.created_wall),
        "updateTime": ms(time.time()),
    }
    if done:
        data["completeTime"] = ms(completed_at(task, latency))
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
        "paramJson": param_json(task),
        "completeTime": clock(completed_at(task, latency)) if flag else None,
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
        "errorMessage": fail_message(task) if flag > 1 else "",
        "createTime": clock(task.created_wall),
        "fallbackFlag": False,
    }


def _runway_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    """Runway's record-detail: ``state`` words, the video and its cover under ``videoInfo``."""
    word = _running_word(fraction, ("wait", "queueing", "generating"))
    if fraction >= 1:
        word = "fail" if task.will_fail else "success"
    return {
        "taskId": task.task_id,
        "parentTaskId": "",
        "generateParam": task.body,
        "state": word,
        "generateTime": clock(task.created_wall),
        "videoInfo": {
            "videoId": task.task_id.replace("-", "")[:16],
            "taskId": task.task_id,
            "videoUrl": task.files["video"][0],
            "imageUrl": task.files["image"][0],
        }
        if word == "success"
        else None,
        "expireFlag": 0,
        "failCode": task.fail_code if word == "fail" else None,
        "failMsg": fail_message(task) if word == "fail" else "",
    }


def _aleph_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    """Aleph's record-info: ``successFlag`` 1 success, 0 in progress or (with an errorMessage)
    failed; ``response.resultVideoUrl`` is the video, ``resultImageUrl`` its thumbnail."""
    done = fraction >= 1
    succeeded = done and not task.will_fail
    failed = done and task.will_fail
    return {
        "taskId": task.task_id,
        "paramJson": param_json(task),
        "response": {
            "taskId": task.task_id,
            "resultVideoUrl": task.files["video"][0],
            "resultImageUrl": task.files["image"][0],
        }
        if succeeded
        else None,
        "completeTime": clock(completed_at(task, latency)) if done else None,
        "createTime": clock(task.created_wall),
        "successFlag": 1 if succeeded else 0,
        "errorCode": task.fail_code if failed else 0,
        "errorMessage": fail_message(task) if failed else "",
    }


def suno_tracks(task: SimTask, stage: str, *, snake: bool) -> list[dict[str, Any]]:
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
            "createTime": ms(task.created_wall),
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
        "param": param_json(task),
        "response": {"taskId": task.task_id, "sunoData": suno_tracks(task, stage, snake=False)}
        if stage
        else None,
        "status": status,
        "type": task.model,
        "operationType": "generate",
        "errorCode": task.fail_code if status == "GENERATE_AUDIO_FAILED" else None,
        "errorMessage": fail_message(task) if status == "GENERATE_AUDIO_FAILED" else None,
    }


def _4o_status(task: SimTask, fraction: float, latency: float) -> dict[str, Any]:
    done = fraction >= 1
    failed = done and task.will_fail
    return {
        "taskId": task.task_id,
        "paramJson": param_json(task),
        "completeTime": ms(completed_at(task, latency)) if done else None,
        "response": {"resultUrls": task.files["image"]} if done and not failed else None,
        # 4o has no flag 3: a failed generation is 2 with status GENERATE_FAILED.
        "successFlag": (2 if failed else 1) if done else 0,
        "status": ("GENERATE_FAILED" if failed else "SUCCESS") if done else "GENERATING",
        "progress": f"{fraction:.2f}",
        "errorCode": task.fail_code if failed else None,
        "errorMessage": fail_message(task) if failed else "",
        "createTime": ms(task.created_wall),
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
        "paramJson": param_json(task),
        "completeTime": ms(completed_at(task, latency)) if flag else None,
        result_key: result if flag in succeeded else None,
        "successFlag": flag,
        "errorCode": task.fail_code if failed else None,
        "errorMessage": fail_message(task) if failed else "",
        "createTime": ms(task.created_wall),
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

STATUS_BUILDERS: dict[str, StatusBuilder] = {
    "market": market_status,
    "veo": _veo_status,
    "runway": _runway_status,
    "aleph": _aleph_status,
    "suno": _suno_status,
    "4o": _4o_status,
    "flux_kontext": _flux_status,
    "midjourney": _midjourney_status,
    "luma": _luma_status,
}
