"""The public shapes of a generation, shared by every channel (API, SSE, WebSocket, Telegram,
webhooks): its JSON, and the event envelope ``{"type": "progress" | "completed" | "error",
"data": {...}}`` in which an error always carries ``data.error`` and ``data.message``."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from app.generations.model import Generation
from app.states import UNSUCCESSFUL, State

if TYPE_CHECKING:
    from app.storage.signing import FileLinks

EventType = Literal["progress", "completed", "error"]


def generation_json(generation: Generation, links: FileLinks | None) -> dict[str, Any]:
    """The public shape of a generation (the contract's fields, plus stage and progress).

    ``files`` are our copies of the results, each with a signed ``url`` (``links``; None only
    where no link can be made, e.g. a process without the link secret).
    """
    return {
        "id": str(generation.id),
        "state": generation.state.value,
        "model": generation.model,
        "task_id": generation.task_id,
        "result_urls": list(generation.result_urls or []),
        "cover_url": generation.cover_url,
        "files": _files(generation, links),
        "mirror": {
            "state": generation.mirror_state,
            "attempts": generation.mirror_attempts,
            "last_error": generation.mirror_last_error,
        },
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


def envelope(generation: Generation, links: FileLinks | None) -> dict[str, Any]:
    """The event envelope of a generation's current state."""
    kind = event_type(generation)
    data = generation_json(generation, links)
    if kind == "error":
        data["error"] = generation.error_code or generation.state.value
        data["message"] = generation.error or generation.state.value
    return {"type": kind, "data": data}


def files_envelope(generation: Generation, links: FileLinks | None) -> dict[str, Any]:
    """The ``progress`` event that tells followers the copies are ready (or that copying ended)."""
    return {"type": "progress", "data": generation_json(generation, links)}


def _files(generation: Generation, links: FileLinks | None) -> list[dict[str, Any]]:
    object_id = str(generation.id)
    return [
        {**entry, "url": links.url(object_id, str(entry["name"])) if links is not None else None}
        for entry in generation.files or []
    ]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
