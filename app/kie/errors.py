"""KIE's answers that are not a success, and what each documented code means for us.

KIE answers HTTP 200 with a business ``code`` inside (the HTTP status may carry it too). For a
create request the question that matters is whether a task could exist: a refusal (a 4xx, 501,
505) surely created nothing, so the generation fails at once with a message naming the cause; a
rate limit, maintenance or a full queue (429, 455, 550) created nothing either and is retried
later; only a timeout or a 5xx without a documented meaning leaves the outcome unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class KieError(Exception):
    """KIE refused or failed a request; ``code`` is its business (or HTTP) status."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"KIE {code}: {message}" if code is not None else message)


class KieAuthError(KieError):
    """The API key was refused (401)."""


class KieCreditsError(KieError):
    """The account has no credits left (402)."""


class KieUncertain(Exception):
    """A create request may have reached KIE: retrying could create a second task."""


class CreateOutcome(Enum):
    """What a create answer that is not a success means for the generation."""

    RETRY_LATER = "retry_later"  # nothing was created, and trying again later can work
    KEEP_QUEUED = "keep_queued"  # nothing was created; every generation would fail the same way
    FAIL = "fail"  # nothing was created, and trying again cannot help
    UNCERTAIN = "uncertain"  # a task may exist: never send it again


@dataclass(frozen=True)
class CodeMeaning:
    """One documented code: what it means for a create, and how to say it to a user."""

    outcome: CreateOutcome
    cause: str  # completes "KIE ..." in the user's error message


# KIE's shared error list (market pages, Veo, 4o, Flux Kontext, Midjourney, Suno); see README.
_CREATE_CODES: dict[int, CodeMeaning] = {
    400: CodeMeaning(CreateOutcome.FAIL, "rejected the request as invalid"),
    401: CodeMeaning(CreateOutcome.KEEP_QUEUED, "refused the API key"),
    402: CodeMeaning(CreateOutcome.FAIL, "reports insufficient credits"),
    404: CodeMeaning(CreateOutcome.FAIL, "does not know this endpoint or model"),
    408: CodeMeaning(CreateOutcome.UNCERTAIN, "timed out"),
    409: CodeMeaning(CreateOutcome.FAIL, "reports a conflict"),
    413: CodeMeaning(CreateOutcome.FAIL, "rejected the input as too long or a duplicate"),
    422: CodeMeaning(CreateOutcome.FAIL, "rejected the input"),
    429: CodeMeaning(CreateOutcome.RETRY_LATER, "is rate limiting this account"),
    433: CodeMeaning(CreateOutcome.FAIL, "reports that the API key reached its usage limit (sub-key limit)"),
    451: CodeMeaning(CreateOutcome.FAIL, "could not fetch an input file"),
    455: CodeMeaning(CreateOutcome.RETRY_LATER, "is under maintenance"),
    500: CodeMeaning(CreateOutcome.UNCERTAIN, "reported a server error"),
    501: CodeMeaning(CreateOutcome.FAIL, "reports that the generation failed"),
    505: CodeMeaning(CreateOutcome.FAIL, "has disabled this feature"),
    550: CodeMeaning(CreateOutcome.RETRY_LATER, "rejected the task because its queue is full"),
}
# Veo and 4o document their 400 as a content-policy refusal.
_CONTENT_POLICY_FAMILIES = frozenset({"veo", "4o"})
_CONTENT_POLICY = CodeMeaning(CreateOutcome.FAIL, "refused the request under its content policy")


def create_meaning(code: int, family: str | None = None) -> CodeMeaning:
    """What a create answered with ``code`` means (undocumented codes by their class)."""
    if code == 400 and family in _CONTENT_POLICY_FAMILIES:
        return _CONTENT_POLICY
    meaning = _CREATE_CODES.get(code)
    if meaning is not None:
        return meaning
    if 400 <= code < 500:
        return CodeMeaning(CreateOutcome.FAIL, f"refused the request (code {code})")
    return CodeMeaning(CreateOutcome.UNCERTAIN, f"answered code {code}")


class KieRefused(KieError):
    """KIE refused a create request; nothing was created. ``meaning`` says what to do about it."""

    def __init__(self, code: int, message: str, meaning: CodeMeaning) -> None:
        super().__init__(code, message)
        self.meaning = meaning

    @property
    def user_message(self) -> str:
        """The error a user sees, e.g. "KIE refused the request under its content policy: ..."."""
        detail = self.message.strip()
        return f"KIE {self.meaning.cause}: {detail}" if detail else f"KIE {self.meaning.cause}"
