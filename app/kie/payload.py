"""Reading what KIE sends: bytes to JSON (however it is wrapped), paths through it, and the small
values inside (ids, text, numbers, URLs). Everything here is bounded and never raises on odd
input: callers rely on that to answer every callback 200."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

MAX_DEPTH = 10
MAX_NODES = 20_000
MAX_ID_LENGTH = 256
_MAX_JSON_STRING = 4 * 1024 * 1024  # a JSON string nested inside the payload
_MAX_JSON_BODY = 32 * 1024 * 1024  # the payload itself
_MAX_DECODE_ROUNDS = 3
_HTTP_URL = re.compile(r"^https?://\S+$", re.IGNORECASE)


def normalise(payload: Any) -> Any:
    """bytes -> str -> JSON (up to three rounds for doubly encoded text)."""
    if isinstance(payload, bytes | bytearray | memoryview):
        payload = bytes(payload)
        # The common case, a JSON object or array in valid UTF-8, parses straight from the bytes;
        # anything else (invalid UTF-8, a BOM, doubly encoded text, a form) takes the long way.
        document = json_document(payload)
        payload = document if document is not None else payload.decode("utf-8", errors="replace")
    for _ in range(_MAX_DECODE_ROUNDS):
        if not isinstance(payload, str):
            break
        decoded = json_or_none(payload.lstrip("\ufeff"), _MAX_JSON_BODY)
        if decoded is None:
            return form_or_text(payload)
        payload = decoded
    # ``data`` as one (possibly large) JSON string is documented: decode it once, here,
    # instead of at every lookup that passes through it.
    top = first_dict(payload)
    if top is not None and isinstance(top.get("data"), str):
        inner = json_or_none(top["data"], _MAX_JSON_BODY)
        if inner is not None:
            top = {**top, "data": inner}
            payload = top if isinstance(payload, dict) else [top]
    return payload


def json_document(body: bytes) -> dict[str, Any] | list[Any] | None:
    """``body`` parsed, when it is a JSON object or array (the same result the text path gives)."""
    if len(body) > _MAX_JSON_BODY or body.lstrip(b" \t\r\n")[:1] not in (b"{", b"["):
        return None
    try:
        document = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError, ValueError):
        return None
    return document if isinstance(document, dict | list) else None


def json_or_none(text: str, limit: int = _MAX_JSON_STRING) -> Any:
    """``text`` parsed as a JSON object, array or string, or None (too long, or not JSON)."""
    if len(text) > limit:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in '{["':
        return None
    try:
        return orjson.loads(stripped)
    except (orjson.JSONDecodeError, RecursionError, ValueError):
        return None


def form_or_text(text: str) -> Any:
    """A form-encoded body (``taskId=...&code=200``) becomes a dict; other text stays text."""
    if "=" in text and "{" not in text and len(text) < 64 * 1024:
        from urllib.parse import parse_qsl

        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        if pairs:
            return dict(pairs)
    return text


def decoded(value: Any) -> Any:
    """A value, with a JSON string inside it decoded (``"data": "{...}"``)."""
    if isinstance(value, str) and value[:1] in ("{", "[") and len(value) <= _MAX_JSON_STRING:
        decoded = json_or_none(value)
        if decoded is not None:
            return decoded
    return value


def first_dict(root: Any) -> dict[str, Any] | None:
    """The payload itself, or the first dict inside an array wrapper."""
    if isinstance(root, dict):
        return root
    if isinstance(root, list):
        for item in root[:50]:
            item = decoded(item)
            if isinstance(item, dict):
                return item
    return None


def at(node: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` through nested dicts (JSON strings on the way decoded), or None."""
    for key in path:
        node = decoded(node)
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def as_id(value: Any) -> str | None:
    """A usable id: a non-empty string (trimmed) or a number; anything else is no id."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            return None
        return str(int(value))
    if isinstance(value, str):
        text = value.strip()
        if text and len(text) <= MAX_ID_LENGTH and text.lower() not in ("null", "none", "undefined"):
            return text
    return None


def fold(key: Any) -> str:
    """A key compared loosely: ``task_id``, ``taskId`` and ``Task-Id`` fold alike."""
    return str(key).lower().replace("_", "").replace("-", "")


def items(mapping: Mapping[str, Any] | None) -> Iterator[tuple[str, Any]]:
    """``(key, first value)`` pairs of a query or header mapping, whatever its kind."""
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


def urls_in(value: Any) -> list[str]:
    """URLs in a value: a URL string, a JSON string of a list, a list of URLs or of {resultUrl}."""
    value = decoded(value)
    if isinstance(value, str):
        url = as_url(value)
        return [url] if url else []
    if isinstance(value, list):
        urls = []
        for item in value[:1000]:
            if isinstance(item, dict):
                item = item.get("resultUrl") or item.get("url") or item.get("result_url")
            url = as_url(item)
            if url:
                urls.append(url)
        return urls
    return []


def as_url(value: Any) -> str | None:
    """An http(s) URL (trimmed, at most 4096 characters), or None."""
    if isinstance(value, str):
        text = value.strip()
        if len(text) <= 4096 and _HTTP_URL.match(text):
            return text
    return None


def failure_text(*candidates: Any) -> str:
    """The first meaningful error text; an envelope's "success" or "ok" says nothing about a failure."""
    for candidate in candidates:
        text = as_text(candidate)
        if text and text.lower() not in ("success", "ok", "succeeded"):
            return text
    return "generation failed"


def as_text(value: Any) -> str | None:
    """Non-empty text (trimmed, at most 1000 characters; numbers as text), or None."""
    if isinstance(value, str):
        value = value.strip()
        return value[:1000] or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def as_int(value: Any) -> int | None:
    """An integer (from a number or numeric text; never a bool), or None."""
    if value.__class__ is int:  # the usual case, checked first (bool is not int here)
        return value
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def as_progress(value: Any) -> float | None:
    """Progress as 0..1 from ``0.5``, ``"0.50"``, ``50`` or ``"50%"``, or None."""
    try:
        number = float(str(value).strip().rstrip("%"))
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return max(0.0, min(1.0, number / 100 if number > 1 else number))
