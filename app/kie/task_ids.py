"""Where a KIE payload keeps its task id: the documented places first, then a depth-first
search for task-id keys, then record ids, the query string, an ``X-Task-Id`` header, and a generic
``id`` last (never a Suno track id)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.kie.payload import MAX_DEPTH, MAX_NODES, as_id, at, decoded, first_dict, fold, items

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


def find_task_id(
    root: Any, query: Mapping[str, Any] | None, headers: Mapping[str, Any] | None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """``(task_id, record_id, debug)`` of a normalised payload; ``debug["strategy"]`` says how."""
    top = first_dict(root)
    record_id = documented_record_id(top)
    if top is not None:
        for path in _DOCUMENTED_PATHS:
            value = as_id(at(top, path))
            if value is not None:
                return value, record_id, {"strategy": "documented", "path": ".".join(path)}
    if record_id is None:
        record_id = search_keys(root, _RECORD_ID_KEYS_FOLDED)[0]
    found, found_at = search_keys(root, _TASK_ID_KEYS_FOLDED)
    if found is not None:
        return found, record_id, {"strategy": "search", "path": found_at}
    if record_id is not None:
        return record_id, record_id, {"strategy": "record_id"}
    for key, value in items(query):
        if fold(key) in _TASK_ID_KEYS_FOLDED and (task_id := as_id(value)) is not None:
            return task_id, record_id, {"strategy": "query", "path": key}
    for key, value in items(headers):
        if key.lower() == "x-task-id" and (task_id := as_id(value)) is not None:
            return task_id, record_id, {"strategy": "header", "path": key}
    if top is not None:
        for path in (("id",), ("data", "id")):
            value = as_id(at(top, path))
            if value is not None:
                return value, record_id, {"strategy": "generic_id", "path": ".".join(path)}
    return None, record_id, {"strategy": "none"}


def documented_record_id(top: dict[str, Any] | None) -> str | None:
    """A ``recordId`` at the top level or in ``data``, where KIE documents one."""
    if top is None:
        return None
    data = decoded(top.get("data"))
    for node in (top, data):
        if isinstance(node, dict) and ("recordId" in node or "record_id" in node):
            for key in ("recordId", "record_id"):
                value = as_id(node.get(key))
                if value is not None:
                    return value
    return None


def search_keys(root: Any, folded_keys: set[str]) -> tuple[str | None, str | None]:
    """Depth-first search (iterative, depth <= 10) for a key in ``folded_keys`` with a usable id.

    Suno's track lists (``data.data[]``) carry track ids under ``id``, never under these keys,
    so a track id cannot be taken for the task id here.
    """
    stack: list[tuple[Any, int, str]] = [(root, 0, "")]
    visited = 0
    while stack and visited < MAX_NODES:
        node, depth, path = stack.pop()
        visited += 1
        node = decoded(node) if depth else node
        if isinstance(node, dict):
            children = []
            for key, value in node.items():
                if isinstance(key, str) and fold(key) in folded_keys and (found := as_id(value)) is not None:
                    return found, f"{path}.{key}".lstrip(".")
                if depth + 1 < MAX_DEPTH and isinstance(value, dict | list | str):
                    children.append((value, depth + 1, f"{path}.{key}"))
            stack.extend(reversed(children))  # keep document order: first key is searched first
        elif isinstance(node, list) and depth + 1 < MAX_DEPTH:
            stack.extend(
                (item, depth + 1, f"{path}[{i}]") for i, item in reversed(list(enumerate(node[:1000])))
            )
    return None, None
