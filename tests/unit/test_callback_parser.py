"""KIE callback parser: every family's shape, stringified variants, id fallbacks, garbage, properties.

The facts come from docs/kie-api.md ("Families", "Status-query results", "Callbacks"): where each
family puts its task id, its success signal and its result URLs.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.kie.callbacks import ParsedCallback, extract_task_id, parse_callback

STATES = {None, "running", "succeeded", "failed"}
STRATEGIES = {"documented", "search", "record_id", "query", "header", "generic_id", "none"}
# KIE waits 15 s for our answer to a callback; parsing even a hostile body may use 1 s of that
# (it takes milliseconds), and one property-test call half of it.
FAST = 1.0
PER_CALL = 0.5


def fields(parsed: ParsedCallback, expected: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``parsed`` named in ``expected``, for a readable diff on failure."""
    return {name: getattr(parsed, name) for name in expected}


def outcome(
    task_id: str | None, state: str | None, urls: list[str], error: str | None = None, **extra: Any
) -> dict[str, Any]:
    """What a parsed callback must say: task id, state, exact result URLs, error, plus extras."""
    return {"task_id": task_id, "state": state, "result_urls": urls, "error": error, **extra}


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


# --- every family and shape from the reference -------------------------------------------------

MARKET_SUCCESS = {
    "code": 200,
    "msg": "Playground task completed successfully.",
    "data": {
        "taskId": "e989621f54392584b05867f87b160672",
        "model": "kling-2.6/image-to-video",
        "state": "success",
        "param": json.dumps(
            {"model": "kling-2.6/image-to-video", "input": {"image_url": "https://example.com/input.png"}}
        ),
        "resultJson": '{"resultUrls":["https://example.com/v.mp4"]}',
        "consumeCredits": 100,
        "remainedCredits": 2510330,
        "costTime": 8,
        "createTime": 1755599634000,
        "completeTime": 1755599644000,
    },
}
MARKET_FAIL = {
    "code": 501,
    "msg": "Playground task failed.",
    "data": {"taskId": "bd3a37c5", "state": "fail", "failCode": "500", "failMsg": "Internal server error"},
}
TEXT_MODEL_RESULT = {"text": "hello world", "language_code": "en", "words": [{"text": "hello", "start": 0.1}]}
VEO_SUCCESS = {
    "code": 200,
    "msg": "Veo3.1 video generated successfully.",
    "data": {
        "taskId": "veo_task_abc",
        "info": {"resultUrls": ["http://example.com/v1.mp4"], "originUrls": [], "resolution": "1080p"},
        "fallbackFlag": False,
    },
}
RUNWAY_SUCCESS = {
    "code": 200,
    "msg": "All generated successfully.",
    "data": {
        "task_id": "ee603959",
        "video_id": "485da89c",
        "video_url": "https://example.com/x.mp4",
        "image_url": "https://example.com/x.png",
    },
}
ALEPH_FAILURE = {
    "code": 400,
    "msg": "Prompt rejected by the safety filter.",
    "data": None,
    "taskId": "ee603959",
}
SUNO_COMPLETE = {
    "code": 200,
    "msg": "All generated successfully.",
    "data": {
        "callbackType": "complete",
        "task_id": "2fac9f72",
        "data": [
            {
                "id": "e231",
                "audio_url": "https://example.com/a.mp3",
                "stream_audio_url": "https://example.com/s",
                "image_url": "https://example.com/c.jpeg",
                "title": "Song",
                "duration": 198.44,
            }
        ],
    },
}


def suno_track(track_id: str, audio: str, stream: str, image: str = "") -> dict[str, Any]:
    return {"id": track_id, "audio_url": audio, "stream_audio_url": stream, "image_url": image, "title": "t"}


def suno(stage: str, tracks: list[dict[str, Any]] | None, code: int = 200, msg: str = "ok") -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": {"callbackType": stage, "task_id": "suno-1", "data": tracks}}


FAMILY_CASES = [
    # market (jobs/createTask): data.taskId, data.state, resultJson is a JSON string
    pytest.param(
        MARKET_SUCCESS,
        outcome("e989621f54392584b05867f87b160672", "succeeded", ["https://example.com/v.mp4"]),
        id="market-success",
    ),
    pytest.param(
        {
            "code": 200,
            "data": {
                "taskId": "m-2",
                "state": "success",
                "resultJson": json.dumps(
                    {"resultUrls": ["https://example.com/1.png", "https://example.com/2.png"]}
                ),
            },
        },
        outcome("m-2", "succeeded", ["https://example.com/1.png", "https://example.com/2.png"]),
        id="market-success-two-urls-in-order",
    ),
    *[
        pytest.param(
            {"code": 200, "data": {"taskId": "m-3", "state": word, "resultJson": "", "failCode": None}},
            outcome("m-3", "running", []),
            id=f"market-{word}",
        )
        for word in ("waiting", "queuing", "generating")
    ],
    pytest.param(
        MARKET_FAIL,
        outcome("bd3a37c5", "failed", [], "Internal server error", error_code="500"),
        id="market-fail",
    ),
    pytest.param(
        {"code": 501, "msg": "Playground task failed.", "data": {**MARKET_FAIL["data"], "failCode": ""}},
        outcome("bd3a37c5", "failed", [], "Internal server error", error_code="501"),
        id="market-fail-empty-failcode-uses-code",
    ),
    pytest.param(
        {
            "code": 501,
            "msg": "Playground task failed.",
            "data": {"taskId": "m-4", "state": "fail", "failCode": None},
        },
        outcome("m-4", "failed", [], "Playground task failed.", error_code="501"),
        id="market-fail-without-failmsg-uses-msg",
    ),
    pytest.param(
        {
            "code": 200,
            "data": {
                "taskId": "stt-1",
                "model": "elevenlabs/speech-to-text",
                "state": "success",
                "param": json.dumps({"input": {"audio_url": "https://example.com/input.mp3"}}),
                "resultJson": json.dumps({"resultObject": TEXT_MODEL_RESULT}),
            },
        },
        outcome("stt-1", "succeeded", [], result_object=TEXT_MODEL_RESULT),
        id="market-text-model-result-object-string",
    ),
    pytest.param(
        {
            "code": 200,
            "data": {"taskId": "stt-2", "state": "success", "resultJson": {"resultObject": {"t": 1}}},
        },
        outcome("stt-2", "succeeded", [], result_object={"t": 1}),
        id="market-text-model-result-object-dict",
    ),
    # veo: code is the only success signal; info.resultUrls is a list or a JSON string of a list
    pytest.param(
        VEO_SUCCESS,
        outcome("veo_task_abc", "succeeded", ["http://example.com/v1.mp4"]),
        id="veo-success-list",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "ok",
            "data": {
                "taskId": "veo-2",
                "info": {"resultUrls": '["https://example.com/a.mp4","https://example.com/b.mp4"]'},
            },
        },
        outcome("veo-2", "succeeded", ["https://example.com/a.mp4", "https://example.com/b.mp4"]),
        id="veo-success-json-string-list",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "4K video generated successfully.",
            "data": {
                "taskId": "veo-4k",
                "info": {
                    "imageUrls": ["https://example.com/4k.jpg"],
                    "resultUrls": ["https://example.com/4k.mp4"],
                },
            },
        },
        # The 4K answer's imageUrls sit beside the video: a thumbnail, never a result.
        outcome(
            "veo-4k", "succeeded", ["https://example.com/4k.mp4"], cover_url="https://example.com/4k.jpg"
        ),
        id="veo-4k-video-and-its-image-apart",
    ),
    *[
        pytest.param(
            {"code": code, "msg": f"veo failed {code}", "data": {"taskId": "veo-f", "info": None}},
            outcome("veo-f", "failed", [], f"veo failed {code}", error_code=str(code)),
            id=f"veo-failed-{code}",
        )
        for code in (400, 422, 500, 501)
    ],
    *[
        pytest.param(
            {"code": 200, "msg": "Veo3.1 video generated successfully.", "data": {"taskId": "veo-e", **info}},
            outcome("veo-e", None, []),
            id=f"veo-200-without-url-{name}",
        )
        for name, info in (
            ("empty-list", {"info": {"resultUrls": []}}),
            ("empty-json-string", {"info": {"resultUrls": "[]"}}),
            ("info-null", {"info": None}),
            ("no-info", {}),
        )
    ],
    # 4o image: data.info.result_urls (snake case); failures carry info null
    pytest.param(
        {
            "code": 200,
            "msg": "success",
            "data": {"taskId": "4o-1", "info": {"result_urls": ["https://example.com/4o.png"]}},
        },
        outcome("4o-1", "succeeded", ["https://example.com/4o.png"]),
        id="4o-success",
    ),
    *[
        pytest.param(
            {"code": code, "msg": f"4o failed {code}", "data": {"taskId": "4o-f", "info": None}},
            outcome("4o-f", "failed", [], f"4o failed {code}", error_code=str(code)),
            id=f"4o-failed-{code}",
        )
        for code in (400, 451, 500)
    ],
    # flux kontext: resultImageUrl is the result, originImageUrl is a short-lived copy
    pytest.param(
        {
            "code": 200,
            "msg": "BFL image generated successfully.",
            "data": {
                "taskId": "flux-1",
                "info": {
                    "originImageUrl": "https://example.com/origin.png",
                    "resultImageUrl": "https://example.com/result.png",
                },
            },
        },
        outcome("flux-1", "succeeded", ["https://example.com/result.png"]),
        id="flux-success-result-not-origin",
    ),
    *[
        pytest.param(
            {
                "code": code,
                "msg": f"flux failed {code}",
                "data": {"taskId": "flux-f", "info": {"originImageUrl": "", "resultImageUrl": ""}},
            },
            outcome("flux-f", "failed", [], f"flux failed {code}", error_code=str(code)),
            id=f"flux-failed-{code}-empty-strings",
        )
        for code in (400, 501)
    ],
    # midjourney and luma: data.resultUrls; 500 with [] is a failure
    pytest.param(
        {
            "code": 200,
            "msg": "success",
            "data": {
                "taskId": "mj-1",
                "promptJson": json.dumps({"prompt": "a cat", "taskType": "mj_txt2img"}),
                "resultUrls": [f"https://example.com/mj{i}.png" for i in range(4)],
            },
        },
        outcome("mj-1", "succeeded", [f"https://example.com/mj{i}.png" for i in range(4)]),
        id="midjourney-success",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "success",
            "data": {"taskId": "luma-1", "resultUrls": ["https://example.com/l.mp4"]},
        },
        outcome("luma-1", "succeeded", ["https://example.com/l.mp4"]),
        id="luma-success",
    ),
    *[
        pytest.param(
            {"code": 500, "msg": "Generation failed", "data": {"taskId": f"{family}-f", "resultUrls": []}},
            outcome(f"{family}-f", "failed", [], "Generation failed", error_code="500"),
            id=f"{family}-failed-500",
        )
        for family in ("mj", "luma")
    ],
    # runway: data.task_id (snake case), video_url and image_url (the video's cover)
    pytest.param(
        RUNWAY_SUCCESS,
        outcome(
            "ee603959", "succeeded", ["https://example.com/x.mp4"], cover_url="https://example.com/x.png"
        ),
        id="runway-success",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "All generated successfully.",
            "data": {
                "image_url": "https://example.com/y.png",
                "video_url": "https://example.com/y.mp4",
                "task_id": "rw-2",
            },
        },
        outcome("rw-2", "succeeded", ["https://example.com/y.mp4"], cover_url="https://example.com/y.png"),
        id="runway-success-the-video-whatever-the-key-order",
    ),
    *[
        pytest.param(
            {
                "code": code,
                "msg": f"runway failed {code}",
                "data": {"task_id": "rw-f", "video_id": "", "video_url": "", "image_url": ""},
            },
            outcome("rw-f", "failed", [], f"runway failed {code}", error_code=str(code)),
            id=f"runway-failed-{code}-empty-urls",
        )
        for code in (400, 500)
    ],
    # aleph: the task id is top-level, data may be null
    pytest.param(
        {
            "code": 200,
            "msg": "success",
            "taskId": "aleph-1",
            "data": {
                "result_image_url": "https://example.com/al.png",
                "result_video_url": "https://example.com/al.mp4",
            },
        },
        outcome(
            "aleph-1", "succeeded", ["https://example.com/al.mp4"], cover_url="https://example.com/al.png"
        ),
        id="aleph-success",
    ),
    pytest.param(
        ALEPH_FAILURE,
        outcome("ee603959", "failed", [], "Prompt rejected by the safety filter.", error_code="400"),
        id="aleph-failed-data-null",
    ),
    # suno: three stage callbacks; only complete is final; audio_url, else stream_audio_url
    pytest.param(
        suno("text", [suno_track("t1", "", "")], msg="Text generation completed successfully."),
        outcome("suno-1", "running", [], stage="text"),
        id="suno-text-stage",
    ),
    pytest.param(
        suno("first", [suno_track("t1", "", "https://example.com/s1")], msg="First track completed."),
        outcome("suno-1", "running", [], stage="first"),
        id="suno-first-stage",
    ),
    pytest.param(
        SUNO_COMPLETE,
        outcome("2fac9f72", "succeeded", ["https://example.com/a.mp3"], stage="complete"),
        id="suno-complete",
    ),
    pytest.param(
        suno(
            "complete",
            [
                suno_track(
                    "t1", "https://example.com/1.mp3", "https://example.com/s1", "https://example.com/1.jpg"
                ),
                suno_track(
                    "t2", "https://example.com/2.mp3", "https://example.com/s2", "https://example.com/2.jpg"
                ),
            ],
        ),
        outcome(
            "suno-1",
            "succeeded",
            ["https://example.com/1.mp3", "https://example.com/2.mp3"],
            stage="complete",
        ),
        id="suno-complete-two-tracks-in-order",
    ),
    pytest.param(
        suno("complete", [suno_track("t1", "", "https://example.com/stream1")]),
        outcome("suno-1", "succeeded", ["https://example.com/stream1"], stage="complete"),
        id="suno-complete-empty-audio-uses-stream",
    ),
    pytest.param(
        suno("error", None, code=400, msg="Your lyrics contain restricted words."),
        outcome(
            "suno-1", "failed", [], "Your lyrics contain restricted words.", stage="error", error_code="400"
        ),
        id="suno-error-stage",
    ),
    pytest.param(
        suno("error", None, code=531, msg="Generation failed, credits refunded."),
        outcome(
            "suno-1", "failed", [], "Generation failed, credits refunded.", stage="error", error_code="531"
        ),
        id="suno-error-stage-531",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "success",
            "data": {"task_id": "wav-1", "audio_wav_url": "https://example.com/a.wav"},
        },
        outcome("wav-1", "succeeded", ["https://example.com/a.wav"]),
        id="suno-wav",
    ),
    pytest.param(
        {"code": 500, "msg": "WAV conversion failed", "data": {"task_id": "wav-2", "audio_wav_url": ""}},
        outcome("wav-2", "failed", [], "WAV conversion failed", error_code="500"),
        id="suno-wav-failed",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "vocal Removal generated successfully.",
            "data": {
                "task_id": "vr-1",
                "vocal_removal_info": {
                    "instrumental_url": "https://example.com/instrumental.mp3",
                    "origin_url": "",
                    "vocal_url": "https://example.com/vocal.mp3",
                },
            },
        },
        outcome(
            "vr-1", "succeeded", ["https://example.com/instrumental.mp3", "https://example.com/vocal.mp3"]
        ),
        id="suno-vocal-separation",
    ),
    pytest.param(
        {
            "code": 200,
            "msg": "success",
            "data": {
                "taskId": "cover-1",
                "images": ["https://example.com/c1.png", "https://example.com/c2.png"],
            },
        },
        outcome("cover-1", "succeeded", ["https://example.com/c1.png", "https://example.com/c2.png"]),
        id="suno-cover-image",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), FAMILY_CASES)
def test_family_callback(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    parsed = parse_callback(payload)
    assert fields(parsed, expected) == expected


def record(data: dict[str, Any], msg: str = "success") -> dict[str, Any]:
    """A status-query (record-info) answer around ``data``."""
    return {"code": 200, "msg": msg, "data": data}


RECORD_INFO_CASES = [
    # successFlag: 0 running, 1 success, 2/3 failed, Luma 4 generated (callback failed) = success
    pytest.param(
        record(
            {"taskId": "veo-r0", "successFlag": 0, "response": None, "errorCode": None, "errorMessage": ""}
        ),
        outcome("veo-r0", "running", []),
        id="veo-flag-0-running",
    ),
    pytest.param(
        record(
            {
                "taskId": "veo-r1",
                "successFlag": 1,
                "response": {
                    "taskId": "veo-r1",
                    "resultUrls": ["https://example.com/r1.mp4"],
                    "originUrls": ["https://example.com/o1.mp4"],
                    "resolution": "1080p",
                },
                "errorCode": None,
                "errorMessage": "",
                "completeTime": "2025-06-06 10:30:00",
            }
        ),
        outcome("veo-r1", "succeeded", ["https://example.com/r1.mp4"]),
        id="veo-flag-1-response-result-urls",
    ),
    *[
        pytest.param(
            record(
                {
                    "taskId": "veo-rf",
                    "successFlag": flag,
                    "response": None,
                    "errorCode": "400",
                    "errorMessage": "Prompt rejected",
                }
            ),
            outcome("veo-rf", "failed", [], "Prompt rejected", error_code="400"),
            id=f"veo-flag-{flag}-failed",
        )
        for flag in (2, 3)
    ],
    pytest.param(
        record(
            {
                "taskId": "veo-rs",
                "successFlag": "1",
                "response": {"resultUrls": ["https://example.com/s.mp4"]},
            }
        ),
        outcome("veo-rs", "succeeded", ["https://example.com/s.mp4"]),
        id="flag-as-string",
    ),
    pytest.param(
        record(
            {
                "taskId": "luma-r4",
                "successFlag": 4,
                "response": {"resultUrls": ["https://example.com/l4.mp4"]},
            }
        ),
        outcome("luma-r4", "succeeded", ["https://example.com/l4.mp4"]),
        id="luma-flag-4-success",
    ),
    pytest.param(
        record(
            {
                "taskId": "flux-r1",
                "successFlag": 1,
                "response": {
                    "originImageUrl": "https://example.com/fo.png",
                    "resultImageUrl": "https://example.com/fr.png",
                },
            }
        ),
        outcome("flux-r1", "succeeded", ["https://example.com/fr.png"]),
        id="flux-flag-1-result-image",
    ),
    pytest.param(
        record(
            {
                "taskId": "mj-r1",
                "taskType": "mj_txt2img",
                "successFlag": 1,
                "resultInfoJson": {
                    "resultUrls": [
                        {"resultUrl": "https://example.com/mj-a.png"},
                        {"resultUrl": "https://example.com/mj-b.png"},
                    ]
                },
            }
        ),
        outcome("mj-r1", "succeeded", ["https://example.com/mj-a.png", "https://example.com/mj-b.png"]),
        id="midjourney-result-info-json-objects",
    ),
    # 4o: successFlag plus status and a progress string
    pytest.param(
        record(
            {
                "taskId": "4o-r0",
                "successFlag": 0,
                "status": "GENERATING",
                "progress": "0.50",
                "response": None,
            }
        ),
        outcome("4o-r0", "running", [], progress=0.5),
        id="4o-generating-progress",
    ),
    pytest.param(
        record(
            {
                "taskId": "4o-r1",
                "successFlag": 1,
                "status": "SUCCESS",
                "progress": "1.00",
                "response": {"resultUrls": ["https://example.com/4o-r.png"]},
            }
        ),
        outcome("4o-r1", "succeeded", ["https://example.com/4o-r.png"]),
        id="4o-success",
    ),
    pytest.param(
        record(
            {
                "taskId": "4o-r2",
                "successFlag": 1,
                "response": {"result_urls": ["https://example.com/4o-s.png"]},
            }
        ),
        outcome("4o-r2", "succeeded", ["https://example.com/4o-s.png"]),
        id="4o-success-snake-case",
    ),
    pytest.param(
        record(
            {
                "taskId": "4o-rf",
                "successFlag": 2,
                "status": "GENERATE_FAILED",
                "errorCode": 400,
                "errorMessage": "Image flagged",
            }
        ),
        outcome("4o-rf", "failed", [], "Image flagged", error_code="400"),
        id="4o-generate-failed",
    ),
    # suno: status vocabulary
    *[
        pytest.param(
            record({"taskId": "suno-r", "status": status, "response": {"sunoData": []}}),
            outcome("suno-r", "running", []),
            id=f"suno-{status}",
        )
        for status in ("PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS")
    ],
    *[
        pytest.param(
            record(
                {"taskId": "suno-rf", "status": status, "errorCode": 413, "errorMessage": "Duplicate audio"}
            ),
            outcome("suno-rf", "failed", [], "Duplicate audio", error_code="413"),
            id=f"suno-{status}",
        )
        for status in (
            "GENERATE_AUDIO_FAILED",
            "CREATE_TASK_FAILED",
            "SENSITIVE_WORD_ERROR",
            "CALLBACK_EXCEPTION",
        )
    ],
    # runway record-detail: state wait / queueing (sic) / generating / success / fail, videoInfo
    *[
        pytest.param(
            record({"taskId": "rw-r", "state": word, "videoInfo": None, "failCode": 0, "failMsg": ""}),
            outcome("rw-r", "running", []),
            id=f"runway-state-{word}",
        )
        for word in ("wait", "queueing", "generating")
    ],
    pytest.param(
        record(
            {
                "taskId": "rw-r1",
                "state": "success",
                "videoInfo": {
                    "videoId": "485da89c",
                    "videoUrl": "https://example.com/rw.mp4",
                    "imageUrl": "https://example.com/rw.png",
                },
                "failCode": 0,
                "failMsg": "",
                "expireFlag": 0,
            }
        ),
        outcome("rw-r1", "succeeded", ["https://example.com/rw.mp4"], cover_url="https://example.com/rw.png"),
        id="runway-state-success-video-info",
    ),
    pytest.param(
        record({"taskId": "rw-rf", "state": "fail", "failCode": "400", "failMsg": "Bad input image"}),
        outcome("rw-rf", "failed", [], "Bad input image", error_code="400"),
        id="runway-state-fail",
    ),
]


@pytest.mark.parametrize(("payload", "expected"), RECORD_INFO_CASES)
def test_record_info_shape(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    parsed = parse_callback(payload)
    assert fields(parsed, expected) == expected


def test_suno_record_info_success_lists_the_tracks_in_order_and_no_cover_among_them() -> None:
    payload = record(
        {
            "taskId": "suno-ok",
            "status": "SUCCESS",
            "response": {
                "taskId": "suno-ok",
                "sunoData": [
                    {
                        "id": "trk-1",
                        "audioUrl": "https://example.com/1.mp3",
                        "streamAudioUrl": "https://example.com/s1",
                        "imageUrl": "https://example.com/1.jpeg",
                    },
                    {
                        "id": "trk-2",
                        "audioUrl": "https://example.com/2.mp3",
                        "streamAudioUrl": "https://example.com/s2",
                        "imageUrl": "https://example.com/2.jpeg",
                    },
                ],
            },
        }
    )
    parsed = parse_callback(payload)
    assert parsed.task_id == "suno-ok"
    assert parsed.state == "succeeded"
    # One audio file per track, in KIE's order; the track art is a cover, never a result.
    assert parsed.result_urls == ["https://example.com/1.mp3", "https://example.com/2.mp3"]
    assert parsed.cover_url == "https://example.com/1.jpeg"


# --- stringified variants -----------------------------------------------------------------------


def data_as_string(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "data": json.dumps(payload["data"])}


VARIANTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "object": lambda p: copy.deepcopy(p),
    "text": json.dumps,
    "text-pretty-with-whitespace": lambda p: "\n  " + json.dumps(p, indent=2) + "\n",
    "bytes": lambda p: json.dumps(p).encode(),
    "bytearray": lambda p: bytearray(json.dumps(p).encode()),
    "double-encoded-text": lambda p: json.dumps(json.dumps(p)),
    "double-encoded-bytes": lambda p: json.dumps(json.dumps(p)).encode(),
    "data-as-json-string": data_as_string,
    "data-as-json-string-in-text": lambda p: json.dumps(data_as_string(p)),
    "array-wrapper": lambda p: [p],
    "array-wrapper-text": lambda p: json.dumps([p]),
    "array-wrapper-of-json-string": lambda p: [json.dumps(p)],
}

VEO_STRING_URLS = {
    "code": 200,
    "msg": "ok",
    "data": {
        "taskId": "veo-s",
        "info": {"resultUrls": '["https://example.com/s1.mp4","https://example.com/s2.mp4"]'},
    },
}
SUNO_FIRST = suno("first", [suno_track("t1", "", "https://example.com/s1")])
FLUX_FAILURE = {
    "code": 400,
    "msg": "flagged",
    "data": {"taskId": "flux-x", "info": {"originImageUrl": "", "resultImageUrl": ""}},
}

STRINGIFIED_BASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "market-success": (
        MARKET_SUCCESS,
        outcome("e989621f54392584b05867f87b160672", "succeeded", ["https://example.com/v.mp4"]),
    ),
    "market-fail": (
        MARKET_FAIL,
        outcome("bd3a37c5", "failed", [], "Internal server error", error_code="500"),
    ),
    "veo-info-result-urls-string": (
        VEO_STRING_URLS,
        outcome("veo-s", "succeeded", ["https://example.com/s1.mp4", "https://example.com/s2.mp4"]),
    ),
    "runway-success": (
        RUNWAY_SUCCESS,
        outcome(
            "ee603959", "succeeded", ["https://example.com/x.mp4"], cover_url="https://example.com/x.png"
        ),
    ),
    "suno-first": (SUNO_FIRST, outcome("suno-1", "running", [], stage="first")),
    "suno-complete": (
        SUNO_COMPLETE,
        outcome("2fac9f72", "succeeded", ["https://example.com/a.mp3"], stage="complete"),
    ),
    "flux-failure": (FLUX_FAILURE, outcome("flux-x", "failed", [], "flagged", error_code="400")),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("base", list(STRINGIFIED_BASES))
def test_stringified_variants_parse_the_same(base: str, variant: str) -> None:
    payload, expected = STRINGIFIED_BASES[base]
    parsed = parse_callback(VARIANTS[variant](payload))
    assert fields(parsed, expected) == expected


@pytest.mark.parametrize(
    "variant", ["text", "bytes", "double-encoded-text", "array-wrapper", "array-wrapper-text"]
)
def test_stringified_aleph_with_null_data(variant: str) -> None:
    parsed = parse_callback(VARIANTS[variant](ALEPH_FAILURE))
    expected = outcome("ee603959", "failed", [], "Prompt rejected by the safety filter.", error_code="400")
    assert fields(parsed, expected) == expected


def test_market_result_json_as_string_and_as_object_agree() -> None:
    urls = ["https://example.com/a.png", "https://example.com/b.png"]
    as_object = {
        "code": 200,
        "data": {"taskId": "rj", "state": "success", "resultJson": {"resultUrls": urls}},
    }
    as_string = {
        "code": 200,
        "data": {"taskId": "rj", "state": "success", "resultJson": json.dumps({"resultUrls": urls})},
    }
    assert parse_callback(as_object).result_urls == urls
    assert parse_callback(as_string).result_urls == urls


def test_doubly_encoded_result_json_inside_text_body() -> None:
    inner = {
        "code": 200,
        "data": {"taskId": "dbl", "state": "success", "resultJson": '{"resultUrls":["https://e.com/a"]}'},
    }
    parsed = parse_callback(json.dumps(json.dumps(inner)).encode())
    assert (parsed.task_id, parsed.state, parsed.result_urls) == ("dbl", "succeeded", ["https://e.com/a"])


# --- task id fallback order ---------------------------------------------------------------------

FALLBACK_CASES = [
    # documented places first, even when a search would meet another id earlier
    pytest.param(
        {"meta": {"taskId": "deep"}, "data": {"taskId": "doc"}},
        None,
        None,
        "doc",
        "documented",
        id="doc-first",
    ),
    pytest.param({"data": {"task_id": "snake"}}, None, None, "snake", "documented", id="doc-data-task-id"),
    pytest.param(
        {"code": 200, "data": None, "taskId": "top"}, None, None, "top", "documented", id="doc-top-level"
    ),
    pytest.param(
        {"data": {"info": {"taskId": "in-info"}}},
        None,
        None,
        "in-info",
        "documented",
        id="doc-data-info-task-id",
    ),
    # then a depth-first search for task-id keys
    pytest.param(
        {"data": {"result": {"meta": {"taskId": "deep-1"}}}},
        None,
        None,
        "deep-1",
        "search",
        id="search-nested",
    ),
    pytest.param(
        {"payload": [{"x": {"task_id": "deep-2"}}]}, None, None, "deep-2", "search", id="search-through-list"
    ),
    pytest.param(
        {"data": {"recordId": "r1", "extra": {"task_id": "t1"}}},
        None,
        None,
        "t1",
        "search",
        id="search-before-record",
    ),
    pytest.param(
        {"wrapper": '{"inner": {"taskId": "in-string"}}'},
        None,
        None,
        "in-string",
        "search",
        id="search-json-string",
    ),
    # then record ids
    pytest.param({"data": {"recordId": "r1"}}, None, None, "r1", "record_id", id="record-id-camel"),
    pytest.param({"record_id": "r2"}, None, None, "r2", "record_id", id="record-id-snake"),
    pytest.param(
        {"data": {"recordId": "r3"}},
        {"taskId": "q"},
        {"X-Task-Id": "h"},
        "r3",
        "record_id",
        id="record-before-query",
    ),
    # then the query string
    pytest.param({}, {"taskId": "q1"}, None, "q1", "query", id="query-task-id"),
    pytest.param({}, {"task_id": "q1s"}, None, "q1s", "query", id="query-task-id-snake"),
    pytest.param({}, {"taskId": ["q2", "q3"]}, None, "q2", "query", id="query-list-value"),
    pytest.param(
        {"id": "g"}, {"taskId": "q4"}, {"X-Task-Id": "h"}, "q4", "query", id="query-before-header-and-id"
    ),
    pytest.param({}, {"taskId": ""}, {"X-Task-Id": "h0"}, "h0", "header", id="query-empty-skipped"),
    pytest.param({}, {"taskId": []}, {"X-Task-Id": "h1"}, "h1", "header", id="query-empty-list-skipped"),
    # then the X-Task-Id header, case-insensitive
    pytest.param({}, None, {"X-Task-Id": "h2"}, "h2", "header", id="header"),
    pytest.param({}, None, {"x-task-id": "h3"}, "h3", "header", id="header-lower"),
    pytest.param({}, None, {"X-TASK-ID": "h4"}, "h4", "header", id="header-upper"),
    pytest.param({"id": "g"}, None, {"X-Task-Id": "h5"}, "h5", "header", id="header-before-generic-id"),
    pytest.param({}, None, {"X-Other": "nope"}, None, "none", id="other-header-ignored"),
    # a generic id last
    pytest.param({"id": "g1"}, None, None, "g1", "generic_id", id="generic-top-level-id"),
    pytest.param({"data": {"id": "g2"}}, None, None, "g2", "generic_id", id="generic-data-id"),
    pytest.param({}, None, None, None, "none", id="nothing"),
    # empty, blank and placeholder strings are skipped
    pytest.param(
        {"data": {"taskId": "", "extra": {"meta": {"taskId": "real"}}}},
        None,
        None,
        "real",
        "search",
        id="empty-skipped",
    ),
    pytest.param(
        {"data": {"taskId": "   "}, "taskId": "top"}, None, None, "top", "documented", id="blank-skipped"
    ),
    pytest.param(
        {"data": {"taskId": "null"}, "id": "g3"}, None, None, "g3", "generic_id", id="null-word-skipped"
    ),
    # numbers become strings, booleans are not ids
    pytest.param({"data": {"taskId": 12345}}, None, None, "12345", "documented", id="number-id"),
    pytest.param({"x": {"task_id": 987}}, None, None, "987", "search", id="number-id-searched"),
    pytest.param({"data": {"taskId": True}}, None, None, None, "none", id="bool-not-id"),
    pytest.param(
        {"data": {"taskId": False, "extra": {"taskId": "real-2"}}},
        None,
        None,
        "real-2",
        "search",
        id="bool-skipped",
    ),
    pytest.param({"id": True}, None, None, None, "none", id="bool-generic-id-not-id"),
]


@pytest.mark.parametrize(("payload", "query", "headers", "task_id", "strategy"), FALLBACK_CASES)
def test_task_id_fallback_order(
    payload: Any,
    query: dict[str, Any] | None,
    headers: dict[str, Any] | None,
    task_id: str | None,
    strategy: str,
) -> None:
    found, _record_id, debug = extract_task_id(payload, query=query, headers=headers)
    assert (found, debug["strategy"]) == (task_id, strategy)
    assert parse_callback(payload, query=query, headers=headers).task_id == task_id


def test_record_id_is_returned_alongside_the_task_id() -> None:
    task_id, record_id, debug = extract_task_id({"data": {"taskId": "t", "recordId": "r"}})
    assert (task_id, record_id, debug["strategy"]) == ("t", "r", "documented")
    parsed = parse_callback({"data": {"taskId": "t", "recordId": "r"}})
    assert (parsed.task_id, parsed.record_id) == ("t", "r")


# --- Suno track ids are never the task id -------------------------------------------------------

TRACKS = [
    suno_track("track-aaa", "https://example.com/1.mp3", ""),
    suno_track("track-bbb", "", "https://e.com/s"),
]


def test_suno_track_ids_are_not_taken_when_the_task_id_follows_them() -> None:
    payload = {"code": 200, "data": {"callbackType": "complete", "data": TRACKS, "task_id": "suno-real"}}
    task_id, _, _ = extract_task_id(payload)
    assert task_id == "suno-real"


def test_suno_track_ids_are_not_taken_when_the_task_id_is_missing() -> None:
    payload = {"code": 200, "data": {"callbackType": "complete", "data": TRACKS}}
    task_id, _, debug = extract_task_id(payload)
    assert (task_id, debug["strategy"]) == (None, "none")
    parsed = parse_callback(json.dumps(payload))
    assert parsed.task_id is None
    assert parsed.result_urls == ["https://example.com/1.mp3", "https://e.com/s"]


def test_suno_track_ids_are_not_taken_when_the_task_id_is_empty() -> None:
    payload = {"code": 200, "data": {"callbackType": "first", "task_id": "", "data": TRACKS}}
    assert extract_task_id(payload)[0] is None
    assert extract_task_id(payload, query={"taskId": "from-query"})[0] == "from-query"


def test_suno_track_ids_are_not_taken_from_a_stringified_track_list() -> None:
    payload = {
        "code": 200,
        "data": json.dumps({"callbackType": "complete", "data": TRACKS, "task_id": "s-2"}),
    }
    parsed = parse_callback(payload)
    assert (parsed.task_id, parsed.state, parsed.stage) == ("s-2", "succeeded", "complete")


# --- garbage, hostile and huge inputs -----------------------------------------------------------


def nested_dict(depth: int, leaf: Any = None, key: str = "a") -> Any:
    node = {} if leaf is None else leaf
    for _ in range(depth):
        node = {key: node}
    return node


def nested_list(depth: int) -> list[Any]:
    node: list[Any] = []
    for _ in range(depth):
        node = [node]
    return node


GARBAGE: dict[str, Callable[[], Any]] = {
    "empty-bytes": lambda: b"",
    "empty-text": lambda: "",
    "whitespace": lambda: " \n\t ",
    "invalid-utf8": lambda: b"\xff\xfe\xfd\x00\x80garbage\xc3\x28",
    "plain-text": lambda: "Internal Server Error",
    "html": lambda: "<html><body>502 Bad Gateway</body></html>",
    "null-text": lambda: "null",
    "null-bytes": lambda: b"null",
    "none": lambda: None,
    "int": lambda: 42,
    "float": lambda: 3.14,
    "number-text": lambda: "42",
    "bool": lambda: True,
    "empty-dict": lambda: {},
    "empty-list": lambda: [],
    "json-string-of-text": lambda: '"just a string"',
    "truncated-json": lambda: '{"code": 200, "data": {"taskId": "abc"',
    "nested-lists": lambda: nested_list(20),
    "deep-list-text-50000": lambda: "[" * 50_000 + "]" * 50_000,
    "deep-object-text-50000": lambda: '{"a":' * 50_000 + "1" + "}" * 50_000,
    "deep-list-object-50000": lambda: nested_list(50_000),
    "deep-dict-object-50000": lambda: nested_dict(50_000),
    "deep-data-dict-50000": lambda: nested_dict(50_000, key="data"),
    "huge-flat-list": lambda: list(range(1_000_000)),
    "huge-flat-list-text": lambda: json.dumps(list(range(1_000_000))),
    "huge-flat-list-of-nulls": lambda: [None] * 1_000_000,
}


@pytest.mark.parametrize("make", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_returns_nothing_fast(make: Callable[[], Any]) -> None:
    payload = make()
    (task_id, record_id, debug), extract_seconds = timed(lambda: extract_task_id(payload))
    parsed, parse_seconds = timed(lambda: parse_callback(payload))
    assert (task_id, record_id, debug["strategy"]) == (None, None, "none")
    assert (parsed.task_id, parsed.state, parsed.result_urls, parsed.error) == (None, None, [], None)
    assert extract_seconds < FAST
    assert parse_seconds < FAST


@pytest.mark.parametrize("make", list(GARBAGE.values()), ids=list(GARBAGE))
def test_garbage_body_still_uses_query_and_header(make: Callable[[], Any]) -> None:
    payload = make()
    (task_id, _, debug), seconds = timed(lambda: extract_task_id(payload, query={"taskId": ["q-1"]}))
    assert (task_id, debug["strategy"]) == ("q-1", "query")
    assert seconds < FAST
    parsed, seconds = timed(lambda: parse_callback(payload, headers={"x-task-id": "h-1"}))
    assert (parsed.task_id, parsed.strategy) == ("h-1", "header")
    assert seconds < FAST


FIVE_MB = 5 * 1024 * 1024

BIG_WITH_ID: dict[str, tuple[Callable[[], Any], str | None]] = {
    "deep-dict-under-data": (
        lambda: {"code": 200, "data": {"taskId": "big", "nested": nested_dict(50_000)}},
        None,
    ),
    "deep-list-beside-data": (lambda: [{"code": 200, "data": {"taskId": "big"}}, nested_list(50_000)], None),
    "callback-before-huge-flat-list": (lambda: [{"data": {"taskId": "big"}}, *range(1_000_000)], None),
    "5mb-padding-string": (
        lambda: json.dumps(
            {"code": 200, "data": {"taskId": "big", "state": "generating", "pad": "x" * FIVE_MB}}
        ).encode(),
        "running",
    ),
    "5mb-padding-before-id": (
        lambda: json.dumps(
            {
                "code": 200,
                "data": {"pad": "[" + "x" * FIVE_MB, "note": "{" * 1000, "taskId": "big", "state": "fail"},
            }
        ),
        "failed",
    ),
    "5mb-list-of-objects": (
        lambda: json.dumps(
            {
                "code": 200,
                "data": {
                    "taskId": "big",
                    "state": "queuing",
                    "items": [{"i": i, "text": "lorem ipsum dolor sit amet " * 4} for i in range(40_000)],
                },
            }
        ),
        "running",
    ),
    "5mb-many-nested-json-strings": (
        lambda: json.dumps(
            {
                "code": 200,
                "data": {
                    "taskId": "big",
                    "state": "success",
                    "resultJson": '{"resultUrls": ["https://example.com/big.mp4"]}',
                    "blobs": [json.dumps({"k": ["v" * 50] * 100}) for _ in range(1_000)],
                },
            }
        ),
        "succeeded",
    ),
    "4mb-wide-object": (
        lambda: json.dumps(
            {
                "code": 200,
                "data": {"taskId": "big", "state": "waiting", **{f"k{i}": i for i in range(250_000)}},
            }
        ),
        "running",
    ),
}


@pytest.mark.parametrize(("make", "state"), list(BIG_WITH_ID.values()), ids=list(BIG_WITH_ID))
def test_huge_payload_still_yields_the_task_id_fast(make: Callable[[], Any], state: str | None) -> None:
    payload = make()
    (task_id, _, debug), extract_seconds = timed(lambda: extract_task_id(payload))
    parsed, parse_seconds = timed(lambda: parse_callback(payload))
    assert (task_id, debug["strategy"]) == ("big", "documented")
    assert (parsed.task_id, parsed.state) == ("big", state)
    assert extract_seconds < FAST
    assert parse_seconds < FAST


def test_multi_megabyte_body_of_many_result_urls_is_fast() -> None:
    """About 2 MB: 20 objects of 1,000 distinct long URLs each, beside the documented Veo info."""
    pad = "p" * 60
    extra = [
        {"resultUrls": [f"https://example.com/{pad}/{j:03d}/{i:04d}.png" for i in range(1_000)]}
        for j in range(20)
    ]
    payload = json.dumps(
        {
            "code": 200,
            "msg": "ok",
            "data": {
                "taskId": "many-urls",
                "info": {"resultUrls": ["https://example.com/main.mp4"]},
                "extra": extra,
            },
        }
    ).encode()
    assert len(payload) > 1_900_000
    parsed, seconds = timed(lambda: parse_callback(payload))
    assert (parsed.task_id, parsed.state) == ("many-urls", "succeeded")
    assert "https://example.com/main.mp4" in parsed.result_urls
    assert seconds < FAST


# --- properties ---------------------------------------------------------------------------------

INTERESTING_KEYS = [
    "taskId",
    "task_id",
    "recordId",
    "id",
    "data",
    "info",
    "response",
    "state",
    "code",
    "msg",
    "callbackType",
    "successFlag",
    "status",
    "progress",
    "resultJson",
    "resultUrls",
    "result_urls",
    "resultImageUrl",
    "video_url",
    "audio_url",
    "images",
    "param",
]
INTERESTING_TEXT = [
    "success",
    "fail",
    "complete",
    "first",
    "SUCCESS",
    "GENERATE_AUDIO_FAILED",
    "https://example.com/x.png",
    '{"taskId": "inner"}',
    '["https://example.com/y.png"]',
    "0.50",
    "",
    "null",
]

any_key = st.sampled_from(INTERESTING_KEYS) | st.text(max_size=10)
any_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(INTERESTING_TEXT)
)
json_like = st.recursive(
    any_leaf,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(any_key, children, max_size=6),
    max_leaves=40,
)
any_payload = (
    json_like
    | json_like.map(json.dumps)
    | json_like.map(lambda v: json.dumps(v).encode())
    | json_like.map(lambda v: json.dumps(json.dumps(v)))
    | st.text()
    | st.binary()
)
queries = st.none() | st.dictionaries(
    st.sampled_from(["taskId", "task_id", "token"]) | st.text(max_size=10),
    st.text(max_size=20) | st.lists(st.text(max_size=20), max_size=3) | st.integers() | st.booleans(),
    max_size=4,
)
header_maps = st.none() | st.dictionaries(
    st.sampled_from(["X-Task-Id", "x-task-id", "Content-Type"]) | st.text(max_size=12),
    st.text(max_size=20),
    max_size=4,
)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_parsed(parsed: ParsedCallback) -> None:
    """Invariants of any parse result."""
    assert isinstance(parsed, ParsedCallback)
    assert parsed.state in STATES
    assert parsed.strategy in STRATEGIES
    assert parsed.task_id is None or (isinstance(parsed.task_id, str) and parsed.task_id.strip() != "")
    assert isinstance(parsed.result_urls, list)
    assert all(
        isinstance(url, str) and url.lower().startswith(("http://", "https://")) for url in parsed.result_urls
    )
    if parsed.state == "failed":
        assert parsed.result_urls == []
        assert parsed.error
    assert parsed.progress is None or 0.0 <= parsed.progress <= 1.0


@PROPERTY_SETTINGS
@given(payload=any_payload, query=queries, headers=header_maps)
def test_parse_callback_never_raises_and_is_fast(payload: Any, query: Any, headers: Any) -> None:
    parsed, seconds = timed(lambda: parse_callback(payload, query=query, headers=headers))
    check_parsed(parsed)
    assert seconds < PER_CALL


@PROPERTY_SETTINGS
@given(payload=any_payload, query=queries, headers=header_maps)
def test_extract_task_id_never_raises_and_is_fast(payload: Any, query: Any, headers: Any) -> None:
    (task_id, record_id, debug), seconds = timed(
        lambda: extract_task_id(payload, query=query, headers=headers)
    )
    assert task_id is None or (isinstance(task_id, str) and task_id.strip() != "")
    assert record_id is None or isinstance(record_id, str)
    assert debug["strategy"] in STRATEGIES
    assert (task_id is None) == (debug["strategy"] == "none")
    assert parse_callback(payload, query=query, headers=headers).task_id == task_id
    assert seconds < PER_CALL


@PROPERTY_SETTINGS
@given(payload=st.text() | st.binary(), query=queries, headers=header_maps)
def test_arbitrary_text_and_bytes_never_raise(payload: str | bytes, query: Any, headers: Any) -> None:
    (_, _, debug), seconds = timed(lambda: extract_task_id(payload, query=query, headers=headers))
    assert debug["strategy"] in STRATEGIES
    assert seconds < PER_CALL
    parsed, seconds = timed(lambda: parse_callback(payload, query=query, headers=headers))
    check_parsed(parsed)
    assert seconds < PER_CALL


# A task id planted within depth 10 is found, whatever surrounds it.

FORBIDDEN_FOLDED = {"taskid", "recordid", "id"}


def fold(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


no_surrogates = st.characters(codec="utf-8")
safe_key = st.text(no_surrogates, max_size=12).filter(lambda k: fold(k) not in FORBIDDEN_FOLDED)
safe_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(no_surrogates, max_size=20).filter(lambda s: s[:1] not in ("{", "["))
)
safe_value = st.recursive(
    safe_leaf,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(safe_key, children, max_size=3),
    max_leaves=8,
)
planted_ids = st.text(no_surrogates, min_size=1, max_size=200).filter(
    lambda s: s == s.strip() and s != "" and s.lower() not in ("null", "none", "undefined")
)
# One level of the path, from the planted dict outwards: a dict under a key, or a list at a position.
levels = st.tuples(
    st.sampled_from(["dict", "list"]),
    safe_key,
    st.integers(min_value=0, max_value=3),
    st.dictionaries(safe_key, safe_value, max_size=3),
    st.lists(safe_value, max_size=3),
)


def plant(
    task_id: str,
    key: str,
    siblings: dict[str, Any],
    path: list[tuple[str, str, int, dict[str, Any], list[Any]]],
) -> Any:
    node: Any = {**siblings, key: task_id}
    for kind, container_key, position, dict_siblings, list_siblings in path:
        if kind == "dict":
            node = {**dict_siblings, container_key: node}
        else:
            items = list(list_siblings)
            items.insert(min(position, len(items)), node)
            node = items
    return node


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    task_id=planted_ids,
    key=st.sampled_from(["taskId", "task_id"]),
    siblings=st.dictionaries(safe_key, safe_value, max_size=3),
    path=st.lists(levels, max_size=9),
    encoding=st.sampled_from(["object", "text", "bytes"]),
)
def test_planted_task_id_is_found(
    task_id: str,
    key: str,
    siblings: dict[str, Any],
    path: list[tuple[str, str, int, dict[str, Any], list[Any]]],
    encoding: str,
) -> None:
    root = plant(task_id, key, siblings, path)
    if encoding == "text":
        payload: Any = json.dumps(root, allow_nan=False)
    elif encoding == "bytes":
        payload = json.dumps(root, allow_nan=False).encode()
    else:
        payload = root
    (found, record_id, debug), seconds = timed(lambda: extract_task_id(payload))
    assert found == task_id, debug
    assert record_id is None
    assert debug["strategy"] in ("documented", "search")
    assert parse_callback(payload).task_id == task_id
    assert seconds < PER_CALL


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("key", ["taskId", "task_id"])
def test_task_id_at_the_deepest_searched_level_is_found(kind: str, key: str) -> None:
    """Root at depth 0, nine containers above the planted dict: the dict itself sits at depth 9."""
    path = [(kind, "level", 1, {"noise": "x"}, ["noise", 1])] * 9
    root = plant("deepest-id", key, {"other": "value"}, path)
    task_id, _, debug = extract_task_id(root)
    assert (task_id, debug["strategy"]) == ("deepest-id", "search")
