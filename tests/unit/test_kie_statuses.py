"""Status answers read per family (``app.kie.statuses``): states, results in order, covers apart,
failures with KIE's message, and nothing called a success before there is a result."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.kie.parse import parse_status


def envelope(data: Any, code: int = 200, **extra: Any) -> dict[str, Any]:
    return {"code": code, "msg": "success", "data": data, **extra}


def read(family: str, data: Any, **extra: Any) -> dict[str, Any]:
    parsed = parse_status(family, envelope(data, **extra), "t-1")
    return {
        "state": parsed.state,
        "result_urls": parsed.result_urls,
        "cover_url": parsed.cover_url,
        "error": parsed.error,
        "error_code": parsed.error_code,
    }


def ok(urls: list[str], cover: str | None = None) -> dict[str, Any]:
    return {"state": "succeeded", "result_urls": urls, "cover_url": cover, "error": None, "error_code": None}


def running() -> dict[str, Any]:
    return {"state": "running", "result_urls": [], "cover_url": None, "error": None, "error_code": None}


def failed(error: str, code: str | None) -> dict[str, Any]:
    return {"state": "failed", "result_urls": [], "cover_url": None, "error": error, "error_code": code}


@pytest.mark.parametrize("word", ["waiting", "queuing", "generating"])
def test_market_running_words(word: str) -> None:
    assert read("market", {"state": word, "resultJson": "", "failCode": "", "failMsg": ""}) == running()


def test_market_success_reads_result_json_and_a_text_result_object() -> None:
    urls = ["https://x.example/1.png", "https://x.example/2.png"]
    assert read("market", {"state": "success", "resultJson": json.dumps({"resultUrls": urls})}) == ok(urls)
    text = parse_status(
        "market",
        envelope({"state": "success", "resultJson": json.dumps({"resultObject": {"text": "hello"}})}),
    )
    assert text.state == "succeeded" and text.result_object == {"text": "hello"} and text.result_urls == []


def test_market_failure_carries_kies_code_and_message() -> None:
    data = {"state": "fail", "resultJson": "", "failCode": "422", "failMsg": "prompt too long"}
    assert read("market", data) == failed("prompt too long", "422")


def test_aleph_success_is_the_video_with_the_thumbnail_apart() -> None:
    data = {
        "successFlag": 1,
        "errorCode": 0,
        "errorMessage": "",
        "response": {
            "resultVideoUrl": "https://x.example/a.mp4",
            "resultImageUrl": "https://x.example/a.png",
        },
    }
    assert read("aleph", data) == ok(["https://x.example/a.mp4"], "https://x.example/a.png")


def test_aleph_zero_without_a_message_is_running_and_with_one_is_a_failure() -> None:
    assert (
        read("aleph", {"successFlag": 0, "errorCode": 0, "errorMessage": "", "response": None}) == running()
    )
    data = {"successFlag": 0, "errorCode": 400, "errorMessage": "caught by the moderator", "response": None}
    assert read("aleph", data) == failed("caught by the moderator", "400")


def test_aleph_success_without_a_video_is_not_a_success_and_never_the_thumbnail() -> None:
    data = {"successFlag": 1, "response": {"resultImageUrl": "https://x.example/a.png"}}
    assert read("aleph", data)["state"] is None
    assert read("aleph", data)["result_urls"] == []


def test_runway_video_with_its_cover_and_failure_message() -> None:
    info = {"videoUrl": "https://x.example/r.mp4", "imageUrl": "https://x.example/r.png"}
    assert read("runway", {"state": "success", "videoInfo": info}) == ok(
        ["https://x.example/r.mp4"], "https://x.example/r.png"
    )
    assert read("runway", {"state": "fail", "failCode": 400, "failMsg": "bad image", "videoInfo": None}) == (
        failed("bad image", "400")
    )


def test_suno_tracks_in_order_with_the_first_cover() -> None:
    tracks = [
        {"id": "a", "audioUrl": "https://x.example/1.mp3", "imageUrl": "https://x.example/1.jpg"},
        {"id": "b", "audioUrl": "https://x.example/2.mp3", "imageUrl": "https://x.example/2.jpg"},
    ]
    data = {"status": "SUCCESS", "response": {"sunoData": tracks}}
    assert read("suno", data) == ok(
        ["https://x.example/1.mp3", "https://x.example/2.mp3"], "https://x.example/1.jpg"
    )
    assert parse_status("suno", envelope(data)).stage == "complete"


@pytest.mark.parametrize("word", ["PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS"])
def test_suno_progress_words(word: str) -> None:
    assert read("suno", {"status": word, "response": None})["state"] == "running"


@pytest.mark.parametrize(
    "word", ["CREATE_TASK_FAILED", "GENERATE_AUDIO_FAILED", "CALLBACK_EXCEPTION", "SENSITIVE_WORD_ERROR"]
)
def test_suno_failure_words(word: str) -> None:
    data = {"status": word, "errorCode": 400, "errorMessage": "lyrics refused", "response": None}
    assert read("suno", data) == failed("lyrics refused", "400")


def test_veo_flags() -> None:
    response = {"resultUrls": ["https://x.example/v.mp4"], "originUrls": ["https://x.example/in.mp4"]}
    assert read("veo", {"successFlag": 1, "response": response}) == ok(["https://x.example/v.mp4"])
    assert read("veo", {"successFlag": 0, "response": None}) == running()
    for flag in (2, 3):
        data = {"successFlag": flag, "errorCode": 501, "errorMessage": "generation failed upstream"}
        assert read("veo", data) == failed("generation failed upstream", "501")


def test_4o_flag_or_status_and_either_result_key() -> None:
    assert read("4o", {"successFlag": 1, "response": {"result_urls": ["https://x.example/o.png"]}}) == ok(
        ["https://x.example/o.png"]
    )
    assert read("4o", {"status": "GENERATING", "progress": "0.40"})["state"] == "running"
    data = {"successFlag": 2, "status": "GENERATE_FAILED", "errorCode": 400, "errorMessage": "flagged"}
    assert read("4o", data) == failed("flagged", "400")


def test_flux_kontext_result_is_the_result_image_never_the_short_lived_origin() -> None:
    response = {
        "originImageUrl": "https://x.example/origin.png",
        "resultImageUrl": "https://x.example/out.png",
    }
    assert read("flux_kontext", {"successFlag": 1, "response": response}) == ok(["https://x.example/out.png"])


def test_midjourney_four_images_in_order() -> None:
    urls = [f"https://x.example/{i}.png" for i in range(4)]
    data = {"successFlag": 1, "resultInfoJson": {"resultUrls": [{"resultUrl": url} for url in urls]}}
    assert read("midjourney", data) == ok(urls)


def test_luma_flag_four_is_a_success() -> None:
    data = {"successFlag": 4, "response": {"resultUrls": ["https://x.example/l.mp4"], "originUrls": []}}
    assert read("luma", data) == ok(["https://x.example/l.mp4"])


@pytest.mark.parametrize("garbage", [None, "", "not json", [], 12, {"data": "nonsense"}])
def test_odd_answers_never_raise_and_say_nothing(garbage: Any) -> None:
    for family in ("market", "veo", "runway", "aleph", "suno", "4o", "flux_kontext", "midjourney", "luma"):
        parsed = parse_status(family, garbage, "t-1")
        assert parsed.state is None and parsed.result_urls == [] and parsed.task_id == "t-1"
