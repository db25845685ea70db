"""The model catalog: which KIE models we offer and what input each one accepts.

A :class:`Model` declares its input fields (:class:`FieldSpec`); ``Catalog.validate`` checks a
user's input against one model's specs and returns it normalised (defaults filled in), ready to be
sent to KIE. The data lives in ``catalog.json``, read and checked as a whole by
:mod:`app.kie.catalog_loader`, so a typo in the file stops the service at start-up (and CI)
instead of surfacing as a confusing KIE error later.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

OUTPUTS = ("image", "video", "audio", "text")

# Signed storage URLs can be long, but not this long; the cap keeps junk out of KIE and our database.
MAX_URL_LENGTH = 4096


class CatalogError(ValueError):
    """The catalog file is malformed; the message names the model and the field at fault."""


class UnknownModelError(LookupError):
    """No model with this id is in the catalog."""

    def __init__(self, model_id: object) -> None:
        self.model_id = model_id
        super().__init__(f"Unknown model: {model_id!r}.")


class InvalidInputError(ValueError):
    """A user's input does not fit the model: ``field`` is a dotted path, ``reason`` a short sentence."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True)
class FieldSpec:
    """One input field of a model, as declared in the catalog file."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    has_default: bool = False
    values: tuple[Any, ...] = ()
    min: int | float | None = None
    max: int | float | None = None
    min_length: int | None = None
    max_length: int | None = None
    max_items: int | None = None
    # Enum only: a human name per value (value as text -> label), e.g. for voice ids.
    labels: tuple[tuple[str, str], ...] = ()

    def label(self, value: Any) -> str:
        """The human name of an enum value (the value itself when it has none)."""
        return dict(self.labels).get(str(value), str(value))

    def describe(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict in the catalog file's shape (for API listings)."""
        spec: dict[str, Any] = {"type": self.type}
        if self.required:
            spec["required"] = True
        if self.values:
            spec["values"] = list(self.values)
        if self.labels:
            spec["labels"] = dict(self.labels)
        for key in ("min", "max", "min_length", "max_length", "max_items"):
            value = getattr(self, key)
            if value is not None:
                spec[key] = value
        if self.has_default:
            spec["default"] = self.default_value()
        return spec

    def default_value(self) -> Any:
        """A fresh copy of the default (lists are stored as tuples so specs stay hashable)."""
        return list(self.default) if isinstance(self.default, tuple) else self.default

    def check(self, value: Any, path: str) -> Any:
        """Return ``value`` normalised for this field, or raise ``InvalidInputError`` naming ``path``."""
        checker = _CHECKERS[self.type]
        return checker(self, value, path)


@dataclass(frozen=True)
class Model:
    """One model we offer: how to reach it at KIE and which input fields it takes."""

    id: str
    kie_model: str | None
    family: str
    output: str
    title: str
    timeout_s: int
    # Field name -> spec, in catalog order. Read-only, and left out of the hash (a mapping has none).
    fields: Mapping[str, FieldSpec] = field(hash=False)
    notes: str | None = None

    @property
    def required(self) -> list[str]:
        """Names of the fields a caller must give, in catalog order."""
        return [spec.name for spec in self.fields.values() if spec.required]

    @property
    def optional(self) -> dict[str, dict[str, Any]]:
        """Optional fields with their spec, including the default where there is one."""
        return {spec.name: spec.describe() for spec in self.fields.values() if not spec.required}

    def spec(self, name: str) -> FieldSpec | None:
        """The spec of field ``name``, or None when the model has no such field."""
        return self.fields.get(name)

    def validate(self, input: Any) -> dict[str, Any]:
        """Check ``input`` against this model and return it normalised, defaults filled in.

        Raises ``InvalidInputError`` for the first problem found. The input is not modified.
        """
        if not isinstance(input, Mapping):
            raise InvalidInputError("input", "Input must be a JSON object.")
        names = list(self.fields)
        for key in input:
            if key not in self.fields:
                raise InvalidInputError(
                    f"input.{key}", f"Unknown field. This model accepts: {', '.join(names)}."
                )
        result: dict[str, Any] = {}
        for spec in self.fields.values():
            # A JSON null means "not given": clients often send every key of a form.
            value = input.get(spec.name)
            if value is None:
                if spec.required:
                    raise InvalidInputError(f"input.{spec.name}", "This field is required.")
                if spec.has_default:
                    result[spec.name] = spec.default_value()
                continue
            result[spec.name] = spec.check(value, f"input.{spec.name}")
        return result


class Catalog:
    """The models we offer, in file order, looked up by our public model id."""

    def __init__(self, models: Sequence[Model]) -> None:
        self._models = tuple(models)
        self._by_id: dict[str, Model] = {}
        for model in self._models:
            if model.id in self._by_id:
                raise CatalogError(f"model {model.id!r}: field 'id': the id is used by more than one model.")
            self._by_id[model.id] = model

    def get(self, model_id: str) -> Model:
        """The model with this public id; raises ``UnknownModelError`` otherwise."""
        model = self._by_id.get(model_id) if isinstance(model_id, str) else None
        if model is None:
            raise UnknownModelError(model_id)
        return model

    def models(self) -> list[Model]:
        """All models, in the order of the catalog file."""
        return list(self._models)

    def validate(self, model_id: str, input: Any) -> dict[str, Any]:
        """Check ``input`` for ``model_id`` and return it normalised (see ``Model.validate``)."""
        return self.get(model_id).validate(input)

    def __len__(self) -> int:
        return len(self._models)


# --- value checks -------------------------------------------------------------------------------


def _check_string(spec: FieldSpec, value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(path, "Must be text.")
    # PostgreSQL cannot store NUL in text or jsonb, and no model wants one.
    if "\x00" in value:
        raise InvalidInputError(path, "Must not contain NUL characters.")
    if spec.required and not value.strip():
        raise InvalidInputError(path, "Must not be empty.")
    if spec.min_length is not None and len(value) < spec.min_length:
        raise InvalidInputError(path, f"Must be at least {spec.min_length} characters long.")
    if spec.max_length is not None and len(value) > spec.max_length:
        raise InvalidInputError(path, f"Must be at most {spec.max_length} characters long.")
    return value


def is_number(value: Any) -> bool:
    # bool is a subclass of int in Python, but true/false is never a number to a user or to KIE.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_range(spec: FieldSpec, value: int | float, path: str) -> None:
    if spec.min is not None and value < spec.min:
        raise InvalidInputError(path, f"Must be at least {_show(spec.min)}.")
    if spec.max is not None and value > spec.max:
        raise InvalidInputError(path, f"Must be at most {_show(spec.max)}.")


def _check_integer(spec: FieldSpec, value: Any, path: str) -> int:
    if not is_number(value):
        raise InvalidInputError(path, "Must be a whole number.")
    if isinstance(value, float):
        # 5.0 is 5 without loss (JSON clients often cannot tell the two apart); 5.5 is not.
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidInputError(path, "Must be a whole number.")
        value = int(value)
    _check_range(spec, value, path)
    number: int = value
    return number


def _check_number(spec: FieldSpec, value: Any, path: str) -> int | float:
    if not is_number(value):
        raise InvalidInputError(path, "Must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(path, "Must be a finite number.")
    # An int is already a number in JSON: keep it as given rather than invent a float.
    _check_range(spec, value, path)
    number: int | float = value
    return number


def _check_boolean(spec: FieldSpec, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(path, "Must be true or false.")
    return value


def _check_enum(spec: FieldSpec, value: Any, path: str) -> Any:
    # Types must match what KIE expects: "5" is not 5. The reason shows values as JSON so the
    # difference is visible to the user.
    same_kind = isinstance(value, str) if isinstance(spec.values[0], str) else is_number(value)
    if same_kind:
        for allowed in spec.values:
            if allowed == value:
                # Return the catalog's own value: 4.0 given for 4 goes to KIE as 4.
                return allowed
    shown = ", ".join(json.dumps(allowed) for allowed in spec.values)
    raise InvalidInputError(path, f"Must be one of: {shown}.")


def _check_url(spec: FieldSpec, value: Any, path: str) -> str:
    reason = "Must be an http or https URL with a host."
    if not isinstance(value, str):
        raise InvalidInputError(path, reason)
    if len(value) > MAX_URL_LENGTH:
        raise InvalidInputError(path, f"Must be at most {MAX_URL_LENGTH} characters long.")
    # Whitespace and control characters are never valid in a URL and would confuse KIE's fetcher.
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidInputError(path, reason)
    try:
        parts = urlsplit(value)
        # Reading .port validates it (it raises ValueError for "http://host:99999").
        _ = parts.port
    except ValueError:
        raise InvalidInputError(path, reason) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(path, reason)
    return value


def _check_url_list(spec: FieldSpec, value: Any, path: str) -> list[str]:
    if not isinstance(value, list | tuple):
        raise InvalidInputError(path, "Must be a list of URLs.")
    if spec.required and not value:
        raise InvalidInputError(path, "Must contain at least one URL.")
    if spec.max_items is not None and len(value) > spec.max_items:
        noun = "URL" if spec.max_items == 1 else "URLs"
        raise InvalidInputError(path, f"Must contain at most {spec.max_items} {noun}.")
    return [_check_url(spec, item, f"{path}[{index}]") for index, item in enumerate(value)]


_CHECKERS = {
    "string": _check_string,
    "integer": _check_integer,
    "number": _check_number,
    "boolean": _check_boolean,
    "enum": _check_enum,
    "url": _check_url,
    "url_list": _check_url_list,
}


def _show(number: int | float) -> str:
    return f"{number:g}" if isinstance(number, float) else str(number)


FIELD_TYPES = tuple(_CHECKERS)
