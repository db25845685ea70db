"""The model catalog: which KIE models we offer and what input each one accepts.

The data lives in ``catalog.json`` beside this module. It is checked as a whole when it is loaded, so a
typo in the file stops the service at start-up instead of surfacing as a confusing KIE error later.
``Catalog.validate`` then checks a user's input against one model's field specs and returns it
normalised (defaults filled in), ready to be sent to KIE.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from app.kie.endpoints import ENDPOINTS

CATALOG_PATH = Path(__file__).with_name("catalog.json")

OUTPUTS = ("image", "video", "audio", "text")

# Keys each field type may carry besides the common ones; anything else in the file is a typo.
_COMMON_FIELD_KEYS = frozenset({"type", "required", "default"})
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "string": frozenset({"min_length", "max_length"}),
    "integer": frozenset({"min", "max"}),
    "number": frozenset({"min", "max"}),
    "boolean": frozenset(),
    "enum": frozenset({"values"}),
    "url": frozenset(),
    "url_list": frozenset({"max_items"}),
}
FIELD_TYPES = tuple(_TYPE_KEYS)

_MODEL_KEYS = frozenset({"id", "kie_model", "family", "output", "title", "timeout_s", "fields", "notes"})
_REQUIRED_MODEL_KEYS = _MODEL_KEYS - {"notes"}

# Field names become JSON keys at KIE and appear in error paths such as ``input.image_urls[0]``.
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

# Signed storage URLs can be long, but not this long; the cap keeps junk out of KIE and our database.
MAX_URL_LENGTH = 4096

# A day is far beyond any KIE generation; a larger timeout in the file is a unit mistake.
_MAX_TIMEOUT_S = 86_400


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

    def describe(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict in the catalog file's shape (for API listings)."""
        spec: dict[str, Any] = {"type": self.type}
        if self.required:
            spec["required"] = True
        if self.values:
            spec["values"] = list(self.values)
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

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Catalog:
        """Read and check a catalog file (default: ``catalog.json`` beside this module)."""
        source = Path(path) if path is not None else CATALOG_PATH
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{source}: cannot read the catalog: {exc}") from exc
        try:
            raw = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{source}: not valid JSON: {exc}") from exc
        except CatalogError as exc:
            raise CatalogError(f"{source}: {exc}") from exc
        try:
            return cls(_parse_models(raw))
        except CatalogError as exc:
            raise CatalogError(f"{source}: {exc}") from exc

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


@functools.cache
def default_catalog() -> Catalog:
    """The shipped catalog, loaded once per process."""
    return Catalog.load()


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


def _is_number(value: Any) -> bool:
    # bool is a subclass of int in Python, but true/false is never a number to a user or to KIE.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_range(spec: FieldSpec, value: int | float, path: str) -> None:
    if spec.min is not None and value < spec.min:
        raise InvalidInputError(path, f"Must be at least {_show(spec.min)}.")
    if spec.max is not None and value > spec.max:
        raise InvalidInputError(path, f"Must be at most {_show(spec.max)}.")


def _check_integer(spec: FieldSpec, value: Any, path: str) -> int:
    if not _is_number(value):
        raise InvalidInputError(path, "Must be a whole number.")
    if isinstance(value, float):
        # 5.0 is 5 without loss (JSON clients often cannot tell the two apart); 5.5 is not.
        if not math.isfinite(value) or not value.is_integer():
            raise InvalidInputError(path, "Must be a whole number.")
        value = int(value)
    _check_range(spec, value, path)
    return value


def _check_number(spec: FieldSpec, value: Any, path: str) -> int | float:
    if not _is_number(value):
        raise InvalidInputError(path, "Must be a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(path, "Must be a finite number.")
    # An int is already a number in JSON: keep it as given rather than invent a float.
    _check_range(spec, value, path)
    return value


def _check_boolean(spec: FieldSpec, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInputError(path, "Must be true or false.")
    return value


def _check_enum(spec: FieldSpec, value: Any, path: str) -> Any:
    # Types must match what KIE expects: "5" is not 5. The reason shows values as JSON so the
    # difference is visible to the user.
    same_kind = isinstance(value, str) if isinstance(spec.values[0], str) else _is_number(value)
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


# --- parsing the file ---------------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys silently; in a catalog that hides a mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CatalogError(f"the key {key!r} appears twice in one JSON object.")
        result[key] = value
    return result


def _parse_models(raw: Any) -> list[Model]:
    if not isinstance(raw, list):
        raise CatalogError("the catalog must be a JSON list of models.")
    if not raw:
        raise CatalogError("the catalog lists no models.")
    # Duplicate ids are caught by Catalog itself, which also guards catalogs built in code.
    return [_parse_model(entry, index) for index, entry in enumerate(raw)]


def _parse_model(entry: Any, index: int) -> Model:
    if not isinstance(entry, dict):
        raise CatalogError(f"model #{index + 1}: must be a JSON object.")
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not model_id or model_id != model_id.strip() or " " in model_id:
        raise CatalogError(f"model #{index + 1}: field 'id': must be a non-empty string without spaces.")

    def fail(key: str, problem: str) -> CatalogError:
        return CatalogError(f"model {model_id!r}: field {key!r}: {problem}")

    for key in entry:
        if key not in _MODEL_KEYS:
            raise fail(key, f"unknown key; a model has: {', '.join(sorted(_MODEL_KEYS))}.")
    for key in sorted(_REQUIRED_MODEL_KEYS):
        if key not in entry:
            raise fail(key, "missing.")

    family = entry["family"]
    if family not in ENDPOINTS:
        raise fail("family", f"{family!r} is not a known family ({', '.join(ENDPOINTS)}).")
    kie_model = entry["kie_model"]
    if kie_model is not None and (not isinstance(kie_model, str) or not kie_model.strip()):
        raise fail("kie_model", "must be a non-empty string or null.")
    if kie_model is None and ENDPOINTS[family].sends_model:
        raise fail("kie_model", f"the {family} family names the model in its create body, so it is required.")
    output = entry["output"]
    if output not in OUTPUTS:
        raise fail("output", f"{output!r} is not one of {', '.join(OUTPUTS)}.")
    title = entry["title"]
    if not isinstance(title, str) or not title.strip():
        raise fail("title", "must be a non-empty string.")
    timeout_s = entry["timeout_s"]
    if not isinstance(timeout_s, int) or isinstance(timeout_s, bool) or not 0 < timeout_s <= _MAX_TIMEOUT_S:
        raise fail("timeout_s", f"must be a whole number of seconds between 1 and {_MAX_TIMEOUT_S}.")
    notes = entry.get("notes")
    if notes is not None and not isinstance(notes, str):
        raise fail("notes", "must be a string.")
    raw_fields = entry["fields"]
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise fail("fields", "must be a non-empty JSON object of field specs.")
    fields = MappingProxyType({name: _parse_field(model_id, name, spec) for name, spec in raw_fields.items()})
    return Model(
        id=model_id,
        kie_model=kie_model,
        family=family,
        output=output,
        title=title,
        timeout_s=timeout_s,
        fields=fields,
        notes=notes,
    )


def _parse_field(model_id: str, name: str, raw: Any) -> FieldSpec:
    def fail(problem: str) -> CatalogError:
        return CatalogError(f"model {model_id!r}: field {name!r}: {problem}")

    if not _FIELD_NAME.match(name):
        raise fail("field names must start with a letter and hold only letters, digits and '_'.")
    if not isinstance(raw, dict):
        raise fail("the spec must be a JSON object.")
    kind = raw.get("type")
    if kind not in _TYPE_KEYS:
        raise fail(f"unknown type {kind!r}; known types: {', '.join(FIELD_TYPES)}.")
    allowed = _COMMON_FIELD_KEYS | _TYPE_KEYS[kind]
    for key in raw:
        if key not in allowed:
            raise fail(f"unknown key {key!r} for type {kind!r}; allowed: {', '.join(sorted(allowed))}.")
    required = raw.get("required", False)
    if not isinstance(required, bool):
        raise fail("'required' must be true or false.")
    if required and "default" in raw:
        # A default would make the field never missing, so "required" would be a lie in listings.
        raise fail("a required field cannot have a default.")

    values: tuple[Any, ...] = ()
    if kind == "enum":
        raw_values = raw.get("values")
        if not isinstance(raw_values, list) or not raw_values:
            raise fail("an enum needs a non-empty 'values' list.")
        all_text = all(isinstance(v, str) for v in raw_values)
        all_numbers = all(_is_number(v) and math.isfinite(v) for v in raw_values)
        if not (all_text or all_numbers):
            raise fail("enum values must be all strings or all numbers.")
        if len(set(raw_values)) != len(raw_values):
            raise fail("enum values must not repeat.")
        values = tuple(raw_values)

    bounds: dict[str, Any] = {}
    for key in ("min", "max"):
        if key in raw:
            bound = raw[key]
            valid = isinstance(bound, int) if kind == "integer" else _is_number(bound)
            if not valid or isinstance(bound, bool) or not math.isfinite(bound):
                raise fail(f"'{key}' must be a {'whole ' if kind == 'integer' else ''}number.")
            bounds[key] = bound
    for key in ("min_length", "max_length", "max_items"):
        if key in raw:
            bound = raw[key]
            smallest = 1 if key == "max_items" else 0
            if not isinstance(bound, int) or isinstance(bound, bool) or bound < smallest:
                raise fail(f"'{key}' must be a whole number of at least {smallest}.")
            bounds[key] = bound
    if "min" in bounds and "max" in bounds and bounds["min"] > bounds["max"]:
        raise fail("'min' is greater than 'max'.")
    if "min_length" in bounds and "max_length" in bounds and bounds["min_length"] > bounds["max_length"]:
        raise fail("'min_length' is greater than 'max_length'.")

    spec = FieldSpec(name=name, type=kind, required=required, values=values, **bounds)
    if "default" not in raw:
        return spec
    default = raw["default"]
    if default is None:
        raise fail("the default must not be null; leave it out instead.")
    try:
        checked = spec.check(default, f"default of {name}")
    except InvalidInputError as exc:
        raise fail(f"the default {json.dumps(default)} fails the field's own spec: {exc.reason}") from None
    # Tuples keep the frozen spec hashable; default_value() hands out a fresh list each time.
    stored = tuple(checked) if isinstance(checked, list) else checked
    return FieldSpec(
        name=name, type=kind, required=required, default=stored, has_default=True, values=values, **bounds
    )
