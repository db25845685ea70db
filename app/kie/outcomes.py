"""What a KIE payload says happened: the state, the results (in KIE's order, never a cover image
or a thumbnail), the cover beside them, and the error.

Callbacks come without their family, so :func:`read_outcome` recognises the shape: Suno's
``callbackType`` stages, a market ``state``, a record-info ``successFlag``/``status``, or the
envelope's ``code``. Status answers, whose family the caller knows, are read by
``app.kie.statuses`` with the same URL rules.
"""

from __future__ import annotations

from typing import Any

from app.kie.families import FAILED, RUNNING, SUCCEEDED, SUNO_STAGES, state_word, status_word, success_flag
from app.kie.parsed import ParsedCallback
from app.kie.payload import (
    MAX_DEPTH,
    MAX_NODES,
    as_int,
    as_progress,
    as_text,
    as_url,
    decoded,
    failure_text,
    first_dict,
    urls_in,
)

# Result keys, in order of preference: lists first (they hold every result, in KIE's order), then
# one-file keys per kind of result.
_LIST_KEYS = (
    "resultUrls",
    "result_urls",
    "fullResultUrls",
    "result_image_url_list",
    "images",
    "resultUrl",
    "url",
)
_VIDEO_KEYS = ("video_url", "videoUrl", "result_video_url", "resultVideoUrl")
_AUDIO_KEYS = ("audio_url", "audioUrl", "audio_wav_url", "instrumental_url", "vocal_url")
_MEDIA_KEYS = _LIST_KEYS + _VIDEO_KEYS + _AUDIO_KEYS
# An image that is the result on its own (Flux Kontext's resultImageUrl) but a thumbnail beside a
# video (Aleph's result_image_url; Veo 4K's imageUrls).
_IMAGE_KEYS = ("resultImageUrl", "result_image_url", "imageUrls")
# Always a cover or a thumbnail, never a result (Suno's and Runway's image_url / imageUrl).
_COVER_KEYS = ("image_url", "imageUrl", "cover_url", "coverUrl", "thumbnail_url", "thumbnailUrl")
_RANK = {key: rank for rank, key in enumerate(_MEDIA_KEYS + _IMAGE_KEYS + _COVER_KEYS)}
# Subtrees that echo the request (input images are not results) or hold short-lived copies.
_SKIP_KEYS = frozenset(
    {
        "param",
        "params",
        "paramJson",
        "generateParam",
        "promptJson",
        "input",
        "request",
        "originImageUrl",
        "originUrls",
        "origin_urls",
        "source_image_url",
        "source_audio_url",
        "source_stream_audio_url",
    }
)
_MAX_RESULT_URLS = 200


def collect_media(data: Any) -> tuple[list[str], str | None]:
    """``(results, cover)`` found under the known keys of ``data``, request echoes skipped."""
    found = _gather(data)
    media = _ordered(found, _MEDIA_KEYS)
    images = _ordered(found, _IMAGE_KEYS)
    covers = _ordered(found, _COVER_KEYS)
    if media:
        results, candidates = media, images + covers
    else:
        results, candidates = images, covers
    cover = next((url for url in candidates if url not in results), None)
    return results, cover


def suno_tracks(tracks: Any) -> tuple[list[str], str | None]:
    """Suno's tracks (``data.data[]`` or ``sunoData[]``): an audio URL per track in order, and a cover."""
    urls: list[str] = []
    cover: str | None = None
    tracks = decoded(tracks)
    if isinstance(tracks, list):
        for track in tracks[:50]:
            if not isinstance(track, dict):
                continue
            audio = as_url(track.get("audio_url")) or as_url(track.get("audioUrl"))
            audio = audio or as_url(track.get("stream_audio_url")) or as_url(track.get("streamAudioUrl"))
            if audio and audio not in urls:
                urls.append(audio)
            cover = cover or as_url(track.get("image_url")) or as_url(track.get("imageUrl"))
    return urls, cover


def read_outcome(root: Any, parsed: ParsedCallback) -> None:
    """Fill ``parsed`` with what a (normalised) callback payload says happened."""
    top = first_dict(root)
    if top is None:
        parsed.shape = "unparseable" if not isinstance(root, dict | list) else "empty"
        return
    parsed.code = as_int(top.get("code"))
    data = decoded(top.get("data"))
    data = data if isinstance(data, dict) else {}
    message = as_text(top.get("msg")) or as_text(top.get("message"))

    stage = as_text(data.get("callbackType")) or as_text(data.get("callback_type"))
    if stage:
        _read_suno_stage(parsed, data, stage.lower())
    elif "state" in data and (market_state := state_word(data.get("state"))) is not None:
        _read_market(parsed, data, market_state, message)
    elif "successFlag" in data or "status" in data:
        _read_record(parsed, data, message)
    else:
        parsed.shape = "code"
        parsed.result_urls, parsed.cover_url = collect_media(data) if data else ([], None)
        if parsed.code == 200:
            # A 200 with no URL yet is not a success (Veo and friends carry no successFlag).
            parsed.state = SUCCEEDED if parsed.result_urls else None
        elif parsed.code is not None:
            parsed.state = FAILED
            parsed.error_code = str(parsed.code)
            parsed.error = failure_text(message, data.get("errorMessage"), f"KIE reported code {parsed.code}")
    finish(parsed, data, message)


def finish(parsed: ParsedCallback, data: dict[str, Any], message: str | None) -> None:
    """The rules every outcome ends with: a failure has an error and no results; progress is read."""
    if parsed.state == FAILED:
        if parsed.error is None:
            parsed.error = failure_text(data.get("failMsg"), data.get("errorMessage"), message)
            parsed.error_code = parsed.error_code or (str(parsed.code) if parsed.code else None)
        parsed.result_urls = []
        parsed.cover_url = None
    if parsed.state == RUNNING and parsed.progress is None:
        parsed.progress = as_progress(data.get("progress"))


def _read_suno_stage(parsed: ParsedCallback, data: dict[str, Any], stage: str) -> None:
    parsed.shape = "suno"
    parsed.stage = stage
    parsed.state = SUNO_STAGES.get(stage)
    if stage == "complete":
        # Tracks first; WAV and vocal-separation callbacks put their files elsewhere in data.
        parsed.result_urls, parsed.cover_url = suno_tracks(data.get("data"))
        if not parsed.result_urls:
            parsed.result_urls, parsed.cover_url = collect_media(data)
        if not parsed.result_urls:
            parsed.state = None  # "complete" with no audio yet: let the status query decide
    if parsed.code is not None and parsed.code != 200 and stage != "error":
        parsed.state = FAILED


def _read_market(parsed: ParsedCallback, data: dict[str, Any], state: str, message: str | None) -> None:
    parsed.shape = "market"
    parsed.state = state
    result = decoded(data.get("resultJson"))
    if isinstance(result, dict):
        parsed.result_urls, parsed.cover_url = collect_media(result)
        if "resultObject" in result:
            parsed.result_object = result.get("resultObject")
    if not parsed.result_urls:
        parsed.result_urls, parsed.cover_url = collect_media(data)
    if state == FAILED:
        parsed.error_code = as_text(data.get("failCode")) or (str(parsed.code) if parsed.code else None)
        parsed.error = failure_text(data.get("failMsg"), message)


def _read_record(parsed: ParsedCallback, data: dict[str, Any], message: str | None) -> None:
    """A record-info shaped payload whose family is not known (``successFlag`` or ``status``)."""
    parsed.shape = "record_info"
    flag_state = success_flag(data.get("successFlag")) if "successFlag" in data else None
    parsed.state = flag_state or status_word(data.get("status"))
    error = as_text(data.get("errorMessage"))
    if parsed.state == RUNNING and error and "successFlag" in data:
        # Aleph answers 0 for both "in progress" and "failed"; only a failure carries a message.
        parsed.state = FAILED
    parsed.result_urls, parsed.cover_url = collect_media(data)
    parsed.progress = as_progress(data.get("progress"))
    if parsed.state == SUCCEEDED and not parsed.result_urls:
        parsed.state = None
    if parsed.state == FAILED:
        parsed.error_code = as_text(data.get("errorCode")) or as_text(data.get("failCode"))
        parsed.error = error or as_text(data.get("failMsg")) or message or "generation failed"


def _gather(data: Any) -> dict[str, list[str]]:
    """URLs per known key, depth-first in document order (iterative and bounded)."""
    found: dict[str, list[str]] = {}
    stack: list[tuple[Any, int]] = [(data, 0)]
    visited = 0
    while stack and visited < MAX_NODES:
        node, depth = stack.pop()
        visited += 1
        node = decoded(node)
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if key in _SKIP_KEYS:
                    continue
                if key in _RANK:  # a dict: one hash lookup, not a scan of the tuples
                    found.setdefault(key, []).extend(urls_in(value))
                elif depth + 1 < MAX_DEPTH and isinstance(value, dict | list | str):
                    children.append((value, depth + 1))
            stack.extend(reversed(children))  # document order: tracks stay in KIE's order
        elif isinstance(node, list) and depth + 1 < MAX_DEPTH:
            stack.extend((item, depth + 1) for item in reversed(node[:1000]) if isinstance(item, dict | list))
    return found


def _ordered(found: dict[str, list[str]], keys: tuple[str, ...]) -> list[str]:
    urls: dict[str, None] = {}  # an ordered set: linear, however many URLs a hostile body holds
    for key in keys:
        for url in found.get(key, ()):
            urls.setdefault(url, None)
            if len(urls) >= _MAX_RESULT_URLS:
                return list(urls)
    return list(urls)
