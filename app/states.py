"""The generation state vocabulary: the states, the moves allowed between them, and how a KIE
outcome becomes a move.

This is the one place states are named. The database layer builds its SQL from these constants,
the schema's CHECK constraint is tested against them, and every channel (API, SSE, Telegram,
webhooks) reports them as they are here.

``queued`` (accepted, not yet at KIE) -> ``submitted`` (KIE accepted it, the task id is known)
-> ``running`` -> one terminal state: ``succeeded``, ``failed``, ``timed_out`` or ``canceled``.
Moves are forward only; a terminal state never changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class State(StrEnum):
    """A generation's state; the values are what the API, the database and every channel use."""

    QUEUED = "queued"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELED = "canceled"


TERMINAL: frozenset[State] = frozenset({State.SUCCEEDED, State.FAILED, State.TIMED_OUT, State.CANCELED})
OPEN: tuple[State, ...] = (State.QUEUED, State.SUBMITTED, State.RUNNING)
# Open and known to KIE: what the poller checks and what an unverified callback may make due.
AT_KIE: tuple[State, ...] = (State.SUBMITTED, State.RUNNING)
# Terminal states that are not a success: the generation ends with an error.
UNSUCCESSFUL: tuple[State, ...] = (State.FAILED, State.TIMED_OUT, State.CANCELED)

# Which current states each target state may be reached from. ``running`` may repeat (progress).
ALLOWED_FROM: Mapping[State, tuple[State, ...]] = MappingProxyType(
    {
        State.SUBMITTED: (State.QUEUED,),
        State.RUNNING: (State.QUEUED, State.SUBMITTED, State.RUNNING),
        **{state: OPEN for state in TERMINAL},
    }
)

# What a KIE answer (a callback or a status query) can say about a task.
KIE_OUTCOMES: frozenset[State] = frozenset({State.RUNNING, State.SUCCEEDED, State.FAILED})


def is_terminal(state: str) -> bool:
    """True for a state that never changes again."""
    return state in TERMINAL


def can_move(current: str, target: str) -> bool:
    """True when a generation in ``current`` may move to ``target``."""
    allowed = ALLOWED_FROM.get(State(target))
    return allowed is not None and current in allowed


@dataclass(frozen=True)
class Transition:
    """A requested move of a generation to ``state``, with what it brings."""

    state: State
    result_urls: list[str] | None = None
    cover_url: str | None = None
    error: str | None = None
    error_code: str | None = None
    stage: str | None = None
    progress: float | None = None
    result_object: Any = None

    def __post_init__(self) -> None:
        if self.state not in ALLOWED_FROM:
            raise ValueError(f"no move leads to {self.state!r}")


@dataclass(frozen=True)
class Moved:
    """A transition that took effect: the generation went from ``previous`` to ``state``."""

    generation_id: Any  # uuid.UUID; Any keeps this module free of the database's types
    previous: State
    state: State


def outcome_transition(outcome: Mapping[str, Any]) -> Transition | None:
    """The move a parsed KIE outcome asks for, or None when it does not say.

    ``outcome`` is a parsed callback or status answer as a mapping (``ParsedCallback.as_dict()``,
    or the same stored in the inbox): ``state`` is ``running``, ``succeeded``, ``failed`` or None.
    A success carries its result URLs (or, for text models, its result object); a failure its
    error; progress carries stage and progress.
    """
    raw = outcome.get("state")
    if raw not in KIE_OUTCOMES:
        return None
    state = State(raw)
    succeeded, failed = state is State.SUCCEEDED, state is State.FAILED
    return Transition(
        state=state,
        result_urls=outcome.get("result_urls") if succeeded else None,
        cover_url=outcome.get("cover_url") if succeeded else None,
        error=outcome.get("error") if failed else None,
        error_code=outcome.get("error_code") if failed else None,
        stage=outcome.get("stage"),
        progress=outcome.get("progress"),
        result_object=outcome.get("result_object") if succeeded else None,
    )


def sql_list(states: tuple[State, ...] | frozenset[State]) -> str:
    """``'a', 'b'`` for an SQL ``IN (...)``: the states are our own constants, never user input.

    Partial indexes match only literal predicates, so hot queries spell the states out rather
    than passing them as a parameter.
    """
    return ", ".join(f"'{state.value}'" for state in sorted(states))
