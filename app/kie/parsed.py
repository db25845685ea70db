"""What a KIE callback or status answer says, normalised (the parser's result)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ParsedCallback:
    """What a callback (or a status answer) says. Every field may be empty; nothing here raises."""

    task_id: str | None = None
    record_id: str | None = None
    state: str | None = None  # running | succeeded | failed | None (the payload does not say)
    # The results the user asked for, in KIE's order; never a cover image or a thumbnail.
    result_urls: list[str] = field(default_factory=list)
    cover_url: str | None = None  # a cover or thumbnail KIE made beside the result (Suno, Runway)
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
            "cover_url": self.cover_url,
            "error": self.error,
            "error_code": self.error_code,
            "stage": self.stage,
            "code": self.code,
            "progress": self.progress,
            "result_object": self.result_object,
            "strategy": self.strategy,
            "shape": self.shape,
        }
