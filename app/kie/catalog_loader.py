"""Reading ``catalog.json``: every model and field is checked when the file is loaded, so a
malformed or inconsistent entry fails at start-up (and in CI), never in front of a user."""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from app.kie.catalog import (
    FIELD_TYPES,
    OUTPUTS,
    Catalog,
    CatalogError,
    FieldSpec,
    InvalidInputError,
    Model,
    is_number,
)
from app.kie.endpoints import ENDPOINTS

CATALOG_PATH = Path(__file__).with_name("catalog.json")

# Keys each field type may carry besides the common ones; anything else in the file is a typo.
_COMMON_FIELD_KEYS = frozenset({"type", "required", "default"})
_TYPE_KEYS: dict[str, frozenset[str]] = {
    "string": frozenset({"min_length", "max_length"}),
    "integer": frozenset({"min", "max"}),
    "number": frozenset({"min", "max"}),
    "boolean": frozenset(),
    "enum": frozenset({"values", "labels"}),
    "url": frozenset(),
    "url_list": frozenset({"max_items"}),
}
assert set(_TYPE_KEYS) == set(FIELD_TYPES), "every field type the validator knows has keys here"

_MODEL_KEYS = frozenset({"id", "kie_model", "family", "output", "title", "timeout_s", "fields", "notes"})
_REQUIRED_MODEL_KEYS = _MODEL_KEYS - {"notes"}

# Field names become JSON keys at KIE and appear in error paths such as ``input.image_urls[0]``.
_FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")

# A day is far beyond any KIE generation; a larger timeout in the file is a unit mistake.
_MAX_TIMEOUT_S = 86_400


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Read and check a catalog file (default: the shipped ``catalog.json``)."""
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
        return Catalog(_parse_models(raw))
    except CatalogError as exc:
        raise CatalogError(f"{source}: {exc}") from exc


@functools.cache
def default_catalog() -> Catalog:
    """The shipped catalog, loaded once per process."""
    return load_catalog()


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
        all_numbers = all(is_number(v) and math.isfinite(v) for v in raw_values)
        if not (all_text or all_numbers):
            raise fail("enum values must be all strings or all numbers.")
        if len(set(raw_values)) != len(raw_values):
            raise fail("enum values must not repeat.")
        values = tuple(raw_values)
    labels = _parse_labels(raw.get("labels"), values, fail) if "labels" in raw else ()

    bounds: dict[str, Any] = {}
    for key in ("min", "max"):
        if key in raw:
            bound = raw[key]
            valid = isinstance(bound, int) if kind == "integer" else is_number(bound)
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

    spec = FieldSpec(name=name, type=kind, required=required, values=values, labels=labels, **bounds)
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
        name=name,
        type=kind,
        required=required,
        default=stored,
        has_default=True,
        values=values,
        labels=labels,
        **bounds,
    )


def _parse_labels(
    raw: Any, values: tuple[Any, ...], fail: Callable[[str], CatalogError]
) -> tuple[tuple[str, str], ...]:
    """An enum's ``labels``: a human name for some or all of its values, and for nothing else."""
    if not isinstance(raw, dict) or not raw:
        raise fail("'labels' must be a non-empty JSON object of value -> name.")
    known = {str(value) for value in values}
    for value, label in raw.items():
        if value not in known:
            raise fail(f"'labels' names {value!r}, which is not one of the enum's values.")
        if not isinstance(label, str) or not label.strip() or len(label) > 100:
            raise fail(f"the label of {value!r} must be a non-empty string of at most 100 characters.")
    return tuple((value, label) for value, label in raw.items())
