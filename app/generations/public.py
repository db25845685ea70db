"""The public shapes of a generation, shared by every channel (API, SSE, WebSocket, Telegram,
webhooks): its JSON, and the event envelope ``{"type": "progress" | "completed" | "error",
"data": {...}}`` in which an error always carries ``data.error`` and ``data.message``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from app.generations.model import Generation
from app.states import UNSUCCESSFUL, State

EventType = Literal["progress", "completed", "error"]


def generation_json(generation: Generation) -> dict[str, Any]:
    """The public shape of a generation (the contract's fields, plus stage and progress)."""
    return {
        "id": str(generation.id),
        "state": generation.state.value,
        "model": generation.model,
        "task_id": generation.task_id,
        "result_urls": list(generation.result_urls or []),
        "cover_url": generation.cover_url,
        "files": list(generation.files or []),
        "result_object": generation.result_object,
        "error": generation.error,
        "error_code": generation.error_code,
        "stage": generation.stage,
        "progress": generation.progress,
        "input": generation.input,
        "created_at": _iso(generation.created_at),
        "updated_at": _iso(generation.updated_at),
        "finished_at": _iso(generation.finished_at),
    }


def event_type(generation: Generation) -> EventType:
    """``completed`` for a success, ``error`` for any other end, ``progress`` while open."""
    if generation.state is State.SUCCEEDED:
        return "completed"
    if generation.state in UNSUCCESSFUL:
        return "error"
    return "progress"


def envelope(generation: Generation) -> dict[str, Any]:
    """The event envelope of a generation's current state."""
    kind = event_type(generation)
    data = generation_json(generation)
    if kind == "error":
        data["error"] = generation.error_code or generation.state.value
        data["message"] = generation.error or generation.state.value
    return {"type": kind, "data": data}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
