"""KIE callback parsing: find the task id and the outcome in any payload shape.

Every KIE model family posts a different shape (``data.taskId``, ``data.task_id``,
a top-level ``taskId`` with ``data: null``, fields that are JSON strings, array
wrappers...). The parser looks in the documented places first, then searches
depth-first, and falls back to record ids, the query string, an ``X-Task-Id``
header and finally a generic ``id``.

Both public functions never raise and stay fast on hostile input: every walk is
iterative, bounded in depth (10) and in the number of nodes it visits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.kie.families import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    SUNO_STAGES,
    state_word,
    status_word,
    success_flag,
)

MAX_DEPTH = 10
_MAX_NODES = 20_000
_MAX_ID_LENGTH = 256
_MAX_JSON_STRING = 4 * 1024 * 1024  # a JSON string nested inside the payload
_MAX_JSON_BODY = 32 * 1024 * 1024  # the payload itself
_MAX_DECODE_ROUNDS = 3

TASK_ID_KEYS = ("taskId", "task_id", "taskID", "TaskId", "task-id")
RECORD_ID_KEYS = ("recordId", "record_id", "recordID")
_TASK_ID_KEYS_FOLDED = {key.lower().replace("_", "").replace("-", "") for key in TASK_ID_KEYS}
_RECORD_ID_KEYS_FOLDED = {key.lower().replace("_", "") for key in RECORD_ID_KEYS}

# Documented places, in order. A path walks dicts; JSON strings on the way are decoded.
_DOCUMENTED_PATHS: tuple[tuple[str, ...], ...] = (
    ("data", "taskId"),  # market, veo, 4o, flux, midjourney, luma, suno cover
    ("data", "task_id"),  # runway, suno
    ("taskId",),  # aleph (data may be null)
    ("task_id",),
    ("data", "response", "taskId"),
    ("data", "response", "task_id"),
    ("data", "info", "taskId"),
    ("data", "info", "task_id"),
    ("data", "data", "taskId"),
    ("data", "data", "task_id"),
)

# Keys whose values are result files, in order of preference (the main output first).
_URL_KEYS = (
    "resultUrls",
    "result_urls",
    "fullResultUrls",
    "resultImageUrl",
    "result_image_url_list",
    "resultUrl",
    "video_url",
    "videoUrl",
    "result_video_url",
    "audio_url",
    "audioUrl",
    "audio_wav_url",
    "instrumental_url",
    "vocal_url",
    "imageUrls",
    "images",
    "image_url",
    "imageUrl",
    "result_image_url",
    "url",
)
_URL_KEY_RANK = {key: rank for rank, key in enumerate(_URL_KEYS)}
# Subtrees that echo the request (input images are not results) or hold short-lived copies.
_URL_SKIP_KEYS = frozenset(
    {
        "param",
        "params",
        "paramJson",
        "generateParam",
        "input",
        "request",
        "originImageUrl",
        "originUrls",
        "origin_urls",
    }
)
_MAX_RESULT_URLS = 200
_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


@dataclass
class ParsedCallback:
    """What a callback says, normalised. Every field may be empty; nothing here raises."""

    task_id: str | None = None
    record_id: str | None = None
    state: str | None = None  # running | succeeded | failed | None (the payload does not say)
    result_urls: list[str] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    stage: str | None = None  # Suno's callbackType (text, first, complete, error)
    code: int | None = None
    progress: float | None = None
    result_object: Any = None  # text models (ElevenLabs speech-to-text) return an object, not URLs
    strategy: str = "none"
    shape: str = "unknown"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy, as stored with the callback event."""
        return {
            "task_id": self.task_id,
            "record_id": self.record_id,
            "state": self.state,
            "result_urls": self.result_urls,
            "error": self.error,
            "error_code": self.error_code,
            "stage": self.stage,
            "code": self.code,
            "progress": self.progress,
            "result_object": self.result_object,
            "strategy": self.strategy,
            "shape": self.shape,
        }


def extract_task_id(
    payload: Any, query: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """Find the task id of a callback: ``(task_id, record_id, debug)``; never raises.

    ``payload`` may be a dict, a list, JSON text (str or bytes, even doubly encoded) or garbage.
    ``debug["strategy"]`` names what found the id: ``documented``, ``search``,
    ``record_id``, ``query``, ``header``, ``generic_id`` or ``none``.
    """
    try:
        return _extract(_normalise(payload), query, headers)
    except Exception as exc:  # the contract: never raise, whatever the input
        return None, None, {"strategy": "none", "error": type(exc).__name__}


def parse_callback(
    payload: Any, query: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None
) -> ParsedCallback:
    """Parse a callback into task id, state, result URLs, error and stage; never raises."""
    try:
        root = _normalise(payload)
        task_id, record_id, debug = _extract(root, query, headers)
        parsed = ParsedCallback(task_id=task_id, record_id=record_id, strategy=debug["strategy"])
        _read_outcome(root, parsed)
        return parsed
    except Exception:  # the contract: never raise, whatever the input
        return ParsedCallback(strategy="none", shape="unparseable")


# --- normalising the payload ---------------------------------------------------------------


def _normalise(payload: Any) -> Any:
    """bytes -> str -> JSON (up to three rounds for doubly encoded text)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload)
        # The common case, a JSON object or array in valid UTF-8, parses straight from the bytes;
        # anything else (invalid UTF-8, a BOM, doubly encoded text, a form) takes the long way.
        document = _json_document(payload)
        payload = document if document is not None else payload.decode("utf-8", errors="replace")
    for _ in range(_MAX_DECODE_ROUNDS):
        if not isinstance(payload, str):
            break
        decoded = _json_or_none(payload.lstrip("\ufeff"), _MAX_JSON_BODY)
        if decoded is None:
            return _form_or_text(payload)
        payload = decoded
    # ``data`` as one (possibly large) JSON string is documented: decode it once, here,
    # instead of at every lookup that passes through it.
    top = _first_dict(payload)
    if top is not None and isinstance(top.get("data"), str):
        inner = _json_or_none(top["data"], _MAX_JSON_BODY)
        if inner is not None:
            top = {**top, "data": inner}
            payload = top if isinstance(payload, dict) else [top]
    return payload


def _json_document(body: bytes) -> dict[str, Any] | list[Any] | None:
    """``body`` parsed, when it is a JSON object or array (the same result the text path gives)."""
    if len(body) > _MAX_JSON_BODY or body.lstrip(b" \t\r\n")[:1] not in (b"{", b"["):
        return None
    try:
        document = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError, ValueError):
        return None
    return document if isinstance(document, dict | list) else None


def _json_or_none(text: str, limit: int = _MAX_JSON_STRING) -> Any:
    if len(text) > limit:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in '{["':
        return None
    try:
        return orjson.loads(stripped)
    except (orjson.JSONDecodeError, RecursionError, ValueError):
        return None


def _form_or_text(text: str) -> Any:
    """A form-encoded body (``taskId=...&code=200``) becomes a dict; other text stays text."""
    if "=" in text and "{" not in text and len(text) < 64 * 1024:
        from urllib.parse import parse_qsl

        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        if pairs:
            return dict(pairs)
    return text


def _decoded(value: Any) -> Any:
    """A value, with a JSON string inside it decoded (``"data": "{...}"``)."""
    if isinstance(value, str) and value[:1] in ("{", "[") and len(value) <= _MAX_JSON_STRING:
        decoded = _json_or_none(value)
        if decoded is not None:
            return decoded
    return value


def _first_dict(root: Any) -> dict[str, Any] | None:
    """The payload itself, or the first dict inside an array wrapper."""
    if isinstance(root, dict):
        return root
    if isinstance(root, list):
        for item in root[:50]:
            item = _decoded(item)
            if isinstance(item, dict):
                return item
    return None


# --- the task id -----------------------------------------------------------------------------


def _extract(
    root: Any, query: Mapping[str, Any] | None, headers: Mapping[str, Any] | None
) -> tuple[str | None, str | None, dict[str, Any]]:
    top = _first_dict(root)
    record_id = _documented_record_id(top)
    if top is not None:
        for path in _DOCUMENTED_PATHS:
            value = _as_id(_at(top, path))
            if value is not None:
                return value, record_id, {"strategy": "documented", "path": ".".join(path)}
    if record_id is None:
        record_id = _search_keys(root, _RECORD_ID_KEYS_FOLDED)[0]
    found, found_at = _search_keys(root, _TASK_ID_KEYS_FOLDED)
    if found is not None:
        return found, record_id, {"strategy": "search", "path": found_at}
    if record_id is not None:
        return record_id, record_id, {"strategy": "record_id"}
    for key, value in _items(query):
        if _fold(key) in _TASK_ID_KEYS_FOLDED and (task_id := _as_id(value)) is not None:
            return task_id, record_id, {"strategy": "query", "path": key}
    for key, value in _items(headers):
        if key.lower() == "x-task-id" and (task_id := _as_id(value)) is not None:
            return task_id, record_id, {"strategy": "header", "path": key}
    if top is not None:
        for path in (("id",), ("data", "id")):
            value = _as_id(_at(top, path))
            if value is not None:
                return value, record_id, {"strategy": "generic_id", "path": ".".join(path)}
    return None, record_id, {"strategy": "none"}


def _documented_record_id(top: dict[str, Any] | None) -> str | None:
    if top is None:
        return None
    data = _decoded(top.get("data"))
    for node in (top, data):
        if isinstance(node, dict) and ("recordId" in node or "record_id" in node):
            for key in ("recordId", "record_id"):
                value = _as_id(node.get(key))
                if value is not None:
                    return value
    return None


def _at(node: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        node = _decoded(node)
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _as_id(value: Any) -> str | None:
    """A usable id: a non-empty string (trimmed) or a number; anything else is no id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return None
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text and len(text) <= _MAX_ID_LENGTH and text.lower() not in ("null", "none", "undefined"):
            return text
    return None


def _fold(key: Any) -> str:
    return str(key).lower().replace("_", "").replace("-", "")


def _items(mapping: Mapping[str, Any] | None) -> Iterator[tuple[str, Any]]:
    if not mapping:
        return
    try:
        items = list(mapping.items())
    except Exception:
        return
    for key, value in items:
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        yield str(key), value


def _search_keys(root: Any, folded_keys: set[str]) -> tuple[str | None, str | None]:
    """Depth-first search (iterative, depth <= 10) for a key in ``folded_keys`` with a usable id.

    Suno's track lists (``data.data[]``) carry track ids under ``id``, never under these keys,
    so a track id cannot be taken for the task id here.
    """
    stack: list[tuple[Any, int, str]] = [(root, 0, "")]
    visited = 0
    while stack and visited < _MAX_NODES:
        node, depth, path = stack.pop()
        visited += 1
        node = _decoded(node) if depth else node
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if (
                    isinstance(key, str)
                    and _fold(key) in folded_keys
                    and (found := _as_id(value)) is not None
                ):
                    return found, f"{path}.{key}".lstrip(".")
                if depth + 1 < MAX_DEPTH and isinstance(value, dict | list | str):
                    children.append((value, depth + 1, f"{path}.{key}"))
            stack.extend(reversed(children))  # keep document order: first key is searched first
        elif isinstance(node, list) and depth + 1 < MAX_DEPTH:
            stack.extend(
                (item, depth + 1, f"{path}[{i}]") for i, item in reversed(list(enumerate(node[:1000])))
            )
    return None, None


# --- the outcome -----------------------------------------------------------------------------


def _read_outcome(root: Any, parsed: ParsedCallback) -> None:
    top = _first_dict(root)
    if top is None:
        parsed.shape = "unparseable" if not isinstance(root, dict | list) else "empty"
        return
    parsed.code = _as_int(top.get("code"))
    data = _decoded(top.get("data"))
    data = data if isinstance(data, dict) else {}
    message = _text(top.get("msg")) or _text(top.get("message"))

    stage = _text(data.get("callbackType")) or _text(data.get("callback_type"))
    if stage:
        parsed.shape = "suno"
        parsed.stage = stage.lower()
        parsed.state = SUNO_STAGES.get(parsed.stage)
        tracks = data.get("data")
        if parsed.stage == "complete":
            # Tracks first; WAV and vocal-separation callbacks put their files elsewhere in data.
            parsed.result_urls = _suno_urls(tracks) or _collect_urls(data)
        if parsed.stage == "complete" and not parsed.result_urls:
            parsed.state = None  # "complete" with no audio yet: let the status query decide
        if parsed.code is not None and parsed.code != 200 and parsed.stage != "error":
            parsed.state = FAILED
    elif "state" in data and (market_state := state_word(data.get("state"))) is not None:
        parsed.shape = "market"
        parsed.state = market_state
        result = _decoded(data.get("resultJson"))
        if isinstance(result, dict):
            parsed.result_urls = _collect_urls(result)
            if "resultObject" in result:
                parsed.result_object = result.get("resultObject")
        if not parsed.result_urls:
            parsed.result_urls = _collect_urls(data)
        if parsed.state == FAILED:
            parsed.error_code = _text(data.get("failCode")) or (str(parsed.code) if parsed.code else None)
            parsed.error = _failure_text(data.get("failMsg"), message)
    elif "successFlag" in data or "status" in data:
        parsed.shape = "record_info"
        flag_state = success_flag(data.get("successFlag")) if "successFlag" in data else None
        parsed.state = flag_state or status_word(data.get("status"))
        parsed.result_urls = _collect_urls(data)
        parsed.progress = _as_progress(data.get("progress"))
        if parsed.state == SUCCEEDED and not parsed.result_urls:
            parsed.state = None
        if parsed.state == FAILED:
            parsed.error_code = _text(data.get("errorCode")) or _text(data.get("failCode"))
            parsed.error = (
                _text(data.get("errorMessage"))
                or _text(data.get("failMsg"))
                or message
                or "generation failed"
            )
    else:
        parsed.shape = "code"
        parsed.result_urls = _collect_urls(data) if data else []
        if parsed.code == 200:
            # A 200 with no URL yet is not a success (Veo and friends carry no successFlag).
            parsed.state = SUCCEEDED if parsed.result_urls else None
        elif parsed.code is not None:
            parsed.state = FAILED
            parsed.result_urls = []
            parsed.error_code = str(parsed.code)
            parsed.error = _failure_text(
                message, data.get("errorMessage"), f"KIE reported code {parsed.code}"
            )

    if parsed.state == FAILED and parsed.error is None:
        parsed.error = _failure_text(data.get("failMsg"), data.get("errorMessage"), message)
        parsed.error_code = parsed.error_code or (str(parsed.code) if parsed.code else None)
    if parsed.state == FAILED:
        parsed.result_urls = []
    if parsed.state == RUNNING and parsed.progress is None:
        parsed.progress = _as_progress(data.get("progress"))


def _suno_urls(tracks: Any) -> list[str]:
    urls: list[str] = []
    tracks = _decoded(tracks)
    if isinstance(tracks, list):
        for track in tracks[:50]:
            if isinstance(track, dict):
                url = _url(track.get("audio_url")) or _url(track.get("audioUrl"))
                url = url or _url(track.get("stream_audio_url")) or _url(track.get("streamAudioUrl"))
                if url and url not in urls:
                    urls.append(url)
    return urls


def _collect_urls(data: Any) -> list[str]:
    """Result URLs under the known keys, main output first, request echoes skipped."""
    found: dict[str, list[str]] = {}
    stack: list[tuple[Any, int]] = [(data, 0)]
    visited = 0
    while stack and visited < _MAX_NODES:
        node, depth = stack.pop()
        visited += 1
        node = _decoded(node)
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if key in _URL_SKIP_KEYS:
                    continue
                if key in _URL_KEY_RANK:  # a dict: one hash lookup, not a scan of the tuple
                    found.setdefault(key, []).extend(_urls_in(value))
                elif depth + 1 < MAX_DEPTH and isinstance(value, dict | list | str):
                    children.append((value, depth + 1))
            stack.extend(reversed(children))  # document order: tracks stay in KIE's order
        elif isinstance(node, list) and depth + 1 < MAX_DEPTH:
            stack.extend((item, depth + 1) for item in reversed(node[:1000]) if isinstance(item, dict | list))
    urls: dict[str, None] = {}  # an ordered set: linear, however many URLs a hostile body holds
    for key in sorted(found, key=_URL_KEY_RANK.__getitem__):
        for url in found[key]:
            urls.setdefault(url, None)
            if len(urls) >= _MAX_RESULT_URLS:
                return list(urls)
    return list(urls)


def _urls_in(value: Any) -> list[str]:
    """URLs in a value: a URL string, a JSON string of a list, a list of URLs or of {resultUrl}."""
    value = _decoded(value)
    if isinstance(value, str):
        url = _url(value)
        return [url] if url else []
    if isinstance(value, list):
        urls = []
        for item in value[:1000]:
            if isinstance(item, dict):
                item = item.get("resultUrl") or item.get("url") or item.get("result_url")
            url = _url(item)
            if url:
                urls.append(url)
        return urls
    return []


def _url(value: Any) -> str | None:
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 4096 and _HTTP_URL.match(text):
            return text
    return None


def _failure_text(*candidates: Any) -> str:
    """The first meaningful error text; an envelope's "success" or "ok" says nothing about a failure."""
    for candidate in candidates:
        text = _text(candidate)
        if text and text.lower() not in ("success", "ok", "succeeded"):
            return text
    return "generation failed"


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value[:1000] or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _as_int(value: Any) -> int | None:
    if value.__class__ is int:  # the usual case, checked first (bool is not int here)
        return value
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _as_progress(value: Any) -> float | None:
    try:
        number = float(str(value).strip().rstrip("%"))
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return max(0.0, min(1.0, number / 100 if number > 1 else number))
