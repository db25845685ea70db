"""KIE's status vocabularies, per model family, mapped to our states.

Our states here are the ones a KIE answer can express (``app.states.KIE_OUTCOMES``):
``running``, ``succeeded``, ``failed``; ``None`` means the answer does not say.
"""

from __future__ import annotations

from app.states import State

RUNNING = State.RUNNING
SUCCEEDED = State.SUCCEEDED
FAILED = State.FAILED

FAMILIES = ("market", "veo", "runway", "aleph", "suno", "4o", "flux_kontext", "midjourney", "luma")

# Market (jobs/createTask) and Runway/Aleph `state` strings.
_STATE_WORDS = {
    "waiting": RUNNING,
    "wait": RUNNING,
    "queuing": RUNNING,
    "queueing": RUNNING,  # Runway's spelling
    "queued": RUNNING,
    "pending": RUNNING,
    "generating": RUNNING,
    "processing": RUNNING,
    "running": RUNNING,
    "success": SUCCEEDED,
    "succeeded": SUCCEEDED,
    "completed": SUCCEEDED,
    "fail": FAILED,
    "failed": FAILED,
    "error": FAILED,
}

# Suno and 4o `status` strings (upper case in KIE's answers).
_STATUS_WORDS = {
    "PENDING": RUNNING,
    "GENERATING": RUNNING,
    "TEXT_SUCCESS": RUNNING,
    "FIRST_SUCCESS": RUNNING,
    "SUCCESS": SUCCEEDED,
    "CREATE_TASK_FAILED": FAILED,
    "GENERATE_AUDIO_FAILED": FAILED,
    "GENERATE_FAILED": FAILED,
    "CALLBACK_EXCEPTION": FAILED,
    "SENSITIVE_WORD_ERROR": FAILED,
}

# Suno's callbackType stages: text and first are progress, complete is final.
SUNO_STAGES = {"text": RUNNING, "first": RUNNING, "complete": SUCCEEDED, "error": FAILED}


def state_word(value: object) -> State | None:
    """Map a market/runway ``state`` string to our state."""
    return _STATE_WORDS.get(value.strip().lower()) if isinstance(value, str) else None


def status_word(value: object) -> State | None:
    """Map a Suno/4o ``status`` string to our state."""
    return _STATUS_WORDS.get(value.strip().upper()) if isinstance(value, str) else None


def success_flag(value: object) -> State | None:
    """Map ``successFlag`` (Veo, 4o, Flux Kontext, Midjourney, Luma) to our state.

    0 running, 1 success, 2 and 3 failed; Luma's 4 means generated but its callback failed,
    which is a success for us.
    """
    try:
        flag = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return {0: RUNNING, 1: SUCCEEDED, 2: FAILED, 3: FAILED, 4: SUCCEEDED}.get(flag)
