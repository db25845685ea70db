"""A generation as the rest of the service sees it: a plain, typed value, not a database row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from app.states import TERMINAL, State


class Row(Protocol):
    """A database row read by column name (an ``asyncpg.Record``, or a mapping)."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True, slots=True)
class Generation:
    """One generation: what was asked (model, input), where it is (state) and what came of it."""

    id: uuid.UUID
    owner: str
    source: str
    model: str
    family: str
    input: dict[str, Any]
    state: State
    task_id: str | None
    idempotency_key: str | None
    result_urls: list[str]
    cover_url: str | None
    files: list[dict[str, Any]]
    result_object: Any
    error: str | None
    error_code: str | None
    stage: str | None
    progress: float | None
    attempts: int
    status_checks: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    deadline_at: datetime | None
    submitted_at: datetime | None
    submit_uncertain_at: datetime | None
    mirror_state: str  # pending | done | failed | disabled: copying the results into our storage
    mirror_attempts: int
    mirror_last_error: str | None

    @classmethod
    def from_row(cls, row: Row) -> Generation:
        """Build from a ``generations`` row (jsonb columns already decoded by the pool's codec)."""
        values = {name: row[name] for name in _FIELD_NAMES}
        values["state"] = State(values["state"])
        return cls(**values)

    @property
    def terminal(self) -> bool:
        """True once the state can never change again."""
        return self.state in TERMINAL

    @property
    def settled(self) -> bool:
        """True once nothing more will happen to it: terminal, and no copy of its results pending
        (live followers stop here, after the files-ready event)."""
        copying = self.state is State.SUCCEEDED and self.mirror_state == "pending"
        return self.terminal and not copying

    @property
    def uncertain(self) -> bool:
        """True while a create request may or may not have reached KIE."""
        return self.submit_uncertain_at is not None


_FIELD_NAMES = tuple(field.name for field in fields(Generation))
