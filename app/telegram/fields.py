"""How the wizard asks for each kind of catalog field and reads the answer, with no Telegram in it:
a question (its message key, values and choices) and a parser that says what is wrong.

Field kinds: ``string`` (typed text within the length limits), ``enum`` (buttons), ``boolean``
(on/off), ``integer`` (buttons for a small range, else typed), ``number`` (typed), ``url`` (one
file sent by the user: an image, or a video or audio file when the field's name says so) and
``url_list`` (several images, then Done).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.kie.catalog import FieldSpec

# An integer field with at most this many values gets one button per value.
_MAX_BUTTONS = 12
_TEXT_LIMIT = 4000


class WrongAnswer(ValueError):
    """The answer does not fit the field: ``key`` and ``values`` name the message to send."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Question:
    """What to ask: a message key with its values, and the button choices (value, label)."""

    key: str
    values: dict[str, Any]
    choices: tuple[tuple[Any, str], ...] = ()


def media_kind(spec: FieldSpec) -> str | None:
    """``image``, ``video`` or ``audio`` for a file field (by its name), None for other fields."""
    if spec.type not in ("url", "url_list"):
        return None
    name = spec.name.lower()
    if "audio" in name:
        return "audio"
    if "video" in name:
        return "video"
    return "image"


def integer_choices(spec: FieldSpec) -> tuple[int, ...]:
    """The values of a small integer range (a button each), or () when the range is large."""
    if spec.type != "integer" or spec.min is None or spec.max is None:
        return ()
    low, high = int(spec.min), int(spec.max)
    return tuple(range(low, high + 1)) if high - low + 1 <= _MAX_BUTTONS else ()


def question(spec: FieldSpec, *, collected: int = 0) -> Question:
    """How to ask for ``spec``."""
    field = spec.name
    kind = spec.type
    if kind == "enum":
        return Question("ask.enum", {"field": field}, tuple((v, spec.label(v)) for v in spec.values))
    if kind == "boolean":
        return Question("ask.boolean", {"field": field}, ((True, "bool.on"), (False, "bool.off")))
    if kind == "integer":
        choices = integer_choices(spec)
        bounds = {"field": field, "min": _bound(spec.min, "-∞"), "max": _bound(spec.max, "∞")}
        return Question("ask.integer", bounds, tuple((v, str(v)) for v in choices))
    if kind == "number":
        return Question(
            "ask.number", {"field": field, "min": _bound(spec.min, "-∞"), "max": _bound(spec.max, "∞")}
        )
    if kind == "url":
        return Question(f"ask.{media_kind(spec)}", {"field": field})
    if kind == "url_list":
        if media_kind(spec) != "image":
            return Question(f"ask.{media_kind(spec)}", {"field": field})
        return Question("ask.images", {"field": field, "max": spec.max_items or 10, "count": collected})
    return Question("ask.text", {"field": field, "max": spec.max_length or _TEXT_LIMIT})


def parse_text(spec: FieldSpec, text: str) -> Any:
    """The value of a typed answer for a text or number field; raises WrongAnswer."""
    field = spec.name
    if spec.type == "string":
        limit = spec.max_length or _TEXT_LIMIT
        if len(text) > limit:
            raise WrongAnswer("wrong.too_long", field=field, length=len(text), max=limit)
        if spec.min_length and len(text.strip()) < spec.min_length:
            raise WrongAnswer("wrong.too_short", field=field, min=spec.min_length)
        if not text.strip():
            raise WrongAnswer("wrong.too_short", field=field, min=1)
        return text
    if spec.type in ("integer", "number"):
        bounds = {"field": field, "min": _bound(spec.min, "-∞"), "max": _bound(spec.max, "∞")}
        try:
            value: int | float = (
                int(text.strip()) if spec.type == "integer" else float(text.strip().replace(",", "."))
            )
        except ValueError:
            raise WrongAnswer("wrong.number", **bounds) from None
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            raise WrongAnswer("wrong.number", **bounds)
        return value
    raise WrongAnswer("wrong.choice", field=field)


def parse_choice(spec: FieldSpec, index: int) -> Any:
    """The value of the ``index``-th button of ``spec``'s question; raises WrongAnswer."""
    choices = question(spec).choices
    if not 0 <= index < len(choices):
        raise WrongAnswer("wrong.choice", field=spec.name)
    return choices[index][0]


def shown(spec: FieldSpec, value: Any) -> str:
    """A value as the settings screen and the summary show it."""
    if spec.type == "enum":
        return spec.label(value)
    if spec.type == "url_list" and isinstance(value, list):
        return f"{len(value)} file(s)"
    if spec.type == "url":
        return "1 file"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bound(value: int | float | None, missing: str) -> str:
    if value is None:
        return missing
    return str(int(value)) if float(value).is_integer() else str(value)
