"""KIE's callbacks and status answers, read: the task id and the outcome, in any payload shape.

Every KIE model family posts a different shape (``data.taskId``, ``data.task_id``, a top-level
``taskId`` with ``data: null``, fields that are JSON strings, array wrappers...). The task id is
looked for in the documented places first, then searched depth-first (``app.kie.task_ids``); the
outcome is read by recognising the family's shape (``app.kie.outcomes``). Status answers, whose
family the caller knows, are read per family (``app.kie.statuses``).

The public functions never raise and stay fast on hostile input: every walk is iterative,
bounded in depth (10) and in the number of nodes it visits. ``app.kie.callbacks`` is the public
name of this module's callback half.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.kie.outcomes import read_outcome
from app.kie.parsed import ParsedCallback
from app.kie.payload import MAX_DEPTH, normalise
from app.kie.statuses import parse_status
from app.kie.task_ids import RECORD_ID_KEYS, TASK_ID_KEYS, find_task_id

__all__ = [
    "MAX_DEPTH",
    "RECORD_ID_KEYS",
    "TASK_ID_KEYS",
    "ParsedCallback",
    "extract_task_id",
    "parse_callback",
    "parse_status",
]


def extract_task_id(
    payload: Any, query: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """Find the task id of a callback: ``(task_id, record_id, debug)``; never raises.

    ``payload`` may be a dict, a list, JSON text (str or bytes, even doubly encoded) or garbage.
    ``debug["strategy"]`` names what found the id: ``documented``, ``search``,
    ``record_id``, ``query``, ``header``, ``generic_id`` or ``none``.
    """
    try:
        return find_task_id(normalise(payload), query, headers)
    except Exception as exc:  # the contract: never raise, whatever the input
        return None, None, {"strategy": "none", "error": type(exc).__name__}


def parse_callback(
    payload: Any, query: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None
) -> ParsedCallback:
    """Parse a callback into task id, state, result URLs, cover, error and stage; never raises."""
    try:
        root = normalise(payload)
        task_id, record_id, debug = find_task_id(root, query, headers)
        parsed = ParsedCallback(task_id=task_id, record_id=record_id, strategy=debug["strategy"])
        read_outcome(root, parsed)
        return parsed
    except Exception:  # the contract: never raise, whatever the input
        return ParsedCallback(strategy="none", shape="unparseable")
