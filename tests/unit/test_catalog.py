"""The model catalog: the shipped file, input validation, and rejection of malformed catalog files."""

from __future__ import annotations

import copy
import json
import math
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.kie.catalog import (
    Catalog,
    CatalogError,
    FieldSpec,
    InvalidInputError,
    Model,
    UnknownModelError,
)
from app.kie.catalog_loader import CATALOG_PATH, default_catalog, load_catalog
from app.kie.endpoints import ENDPOINTS

CATALOG = default_catalog()
RAW = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))

# Shortest sensible wait per output kind: video generations routinely take many minutes.
MIN_TIMEOUT = {"image": 300, "audio": 300, "text": 300, "video": 1800}
MAX_TIMEOUT = 7200


# --- the shipped catalog ------------------------------------------------------------------------


def test_shipped_catalog_loads_once_and_in_file_order() -> None:
    assert default_catalog() is default_catalog()
    assert [model.id for model in CATALOG.models()] == [entry["id"] for entry in RAW]
    assert len(CATALOG) == len(RAW)


def test_ids_are_unique() -> None:
    ids = [entry["id"] for entry in RAW]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("family", sorted(ENDPOINTS))
def test_every_family_has_a_model(family: str) -> None:
    assert any(model.family == family for model in CATALOG.models())


@pytest.mark.parametrize("model", CATALOG.models(), ids=lambda model: model.id)
def test_every_model_is_usable(model: Model) -> None:
    assert model.required, "every model needs at least one required field"
    assert MIN_TIMEOUT[model.output] <= model.timeout_s <= MAX_TIMEOUT
    if ENDPOINTS[model.family].sends_model:
        assert model.kie_model
    assert model.title.strip()


def test_required_and_optional_listing() -> None:
    model = CATALOG.get("kling-2.6/text-to-video")
    assert model.required == ["prompt"]
    assert model.optional == {
        "sound": {"type": "boolean", "default": False},
        "aspect_ratio": {"type": "enum", "values": ["1:1", "16:9", "9:16"], "default": "1:1"},
        "duration": {"type": "enum", "values": ["5", "10"], "default": "5"},
    }
    assert "prompt" not in model.optional
    prompt = model.spec("prompt")
    assert prompt is not None
    assert prompt.describe() == {"type": "string", "required": True, "max_length": 1000}
    assert model.spec("nope") is None
    assert model.fields["prompt"] is prompt
    assert list(model.fields) == ["prompt", "sound", "aspect_ratio", "duration"]


def test_models_are_immutable_and_hashable() -> None:
    model = CATALOG.get("kling-2.6/text-to-video")
    with pytest.raises(TypeError):
        model.fields["seed"] = model.fields["prompt"]  # type: ignore[index]
    assert hash(model) == hash(load_catalog().get(model.id))
    assert model == load_catalog().get(model.id)


def test_unknown_model() -> None:
    with pytest.raises(UnknownModelError) as caught:
        CATALOG.get("kling-9000")
    assert caught.value.model_id == "kling-9000"
    with pytest.raises(UnknownModelError):
        CATALOG.validate("kling-9000", {"prompt": "x"})
    with pytest.raises(UnknownModelError):
        CATALOG.get(["not", "hashable"])  # type: ignore[arg-type]


# --- validation: normalisation ------------------------------------------------------------------


def test_defaults_are_filled_in() -> None:
    result = CATALOG.validate("kling-2.6/text-to-video", {"prompt": "a cat surfing"})
    assert result == {"prompt": "a cat surfing", "sound": False, "aspect_ratio": "1:1", "duration": "5"}


def test_given_values_win_over_defaults_and_strings_stay_strings() -> None:
    result = CATALOG.validate(
        "kling-2.6/text-to-video", {"prompt": "p", "duration": "10", "sound": True, "aspect_ratio": "9:16"}
    )
    assert result["duration"] == "10"
    assert result["sound"] is True
    assert result["aspect_ratio"] == "9:16"


def test_null_means_not_given() -> None:
    result = CATALOG.validate("kling-2.6/text-to-video", {"prompt": "p", "duration": None})
    assert result["duration"] == "5"
    result = CATALOG.validate(MJ, {**MJ_INPUT, "stylization": None})
    assert "stylization" not in result


def test_optional_fields_without_default_are_left_out() -> None:
    # imageUrls, generationType, watermark and enableTranslation have no default: they stay out.
    result = CATALOG.validate("veo/veo3_fast", {"prompt": "p"})
    assert result == {"prompt": "p", "aspect_ratio": "16:9", "resolution": "720p", "duration": 8}


def test_lossless_number_coercions() -> None:
    # A whole float for an integer field becomes an int.
    result = CATALOG.validate(MJ, {**MJ_INPUT, "stylization": 250.0})
    assert result["stylization"] == 250
    assert type(result["stylization"]) is int
    # An int for a number field stays an int: it already is a JSON number.
    result = CATALOG.validate("elevenlabs/text-to-speech-multilingual-v2", {"text": "hi", "stability": 1})
    assert result["stability"] == 1
    assert type(result["stability"]) is int
    assert result["similarity_boost"] == 0.75
    # A numeric enum hands back the catalog's own value.
    result = CATALOG.validate("veo/veo3_fast", {"prompt": "p", "duration": 6.0})
    assert result["duration"] == 6
    assert type(result["duration"]) is int
    result = CATALOG.validate("runway/gen3", {"prompt": "p", "duration": 10})
    assert result["duration"] == 10


def test_url_list_is_validated_and_copied() -> None:
    urls = ["https://example.com/a.png"]
    result = CATALOG.validate("google/nano-banana-edit", {"prompt": "p", "image_urls": urls})
    assert result["image_urls"] == urls
    assert result["image_urls"] is not urls


def test_validation_does_not_modify_the_input() -> None:
    given_input = {"prompt": "p", "image_urls": ["https://example.com/a.png"]}
    before = copy.deepcopy(given_input)
    CATALOG.validate("kling-2.6/image-to-video", given_input)
    assert given_input == before


def test_defaults_are_fresh_copies() -> None:
    spec = FieldSpec(name="urls", type="url_list", default=("https://a.example/x",), has_default=True)
    first = spec.default_value()
    first.append("https://b.example/y")
    assert spec.default_value() == ["https://a.example/x"]


def test_optional_empty_string_is_allowed() -> None:
    # An empty watermark means "no watermark" to KIE; only required strings must not be blank.
    result = CATALOG.validate("runway/gen3", {"prompt": "p", "waterMark": ""})
    assert result["waterMark"] == ""


# --- validation: errors -------------------------------------------------------------------------

T2V = "kling-2.6/text-to-video"
I2V = "kling-2.6/image-to-video"
MJ = "midjourney/imagine"
# KIE requires speed for Midjourney image tasks and documents no default, so every input names one.
MJ_INPUT: dict[str, Any] = {"prompt": "p", "speed": "fast"}
TTS = "elevenlabs/text-to-speech-multilingual-v2"
LUMA = "luma/modify"

ERROR_CASES: list[tuple[str, str, Any, str, str]] = [
    # (case id, model, input, field, words the reason must contain)
    ("not-an-object", T2V, ["prompt"], "input", "must be a JSON object"),
    ("string-input", T2V, "a cat", "input", "must be a JSON object"),
    ("unknown-field", T2V, {"prompt": "p", "colour": "red"}, "input.colour", "Unknown field"),
    ("missing-required", T2V, {"duration": "5"}, "input.prompt", "required"),
    ("null-required", T2V, {"prompt": None}, "input.prompt", "required"),
    ("empty-required-string", T2V, {"prompt": ""}, "input.prompt", "must not be empty"),
    ("blank-required-string", T2V, {"prompt": " \n\t "}, "input.prompt", "must not be empty"),
    ("string-wrong-type", T2V, {"prompt": 5}, "input.prompt", "must be text"),
    ("string-nul", T2V, {"prompt": "a\x00b"}, "input.prompt", "NUL"),
    ("too-long", T2V, {"prompt": "x" * 1001}, "input.prompt", "at most 1000 characters"),
    ("too-short", "flux-2/pro-text-to-image", {"prompt": "ab"}, "input.prompt", "at least 3 characters"),
    ("enum-not-allowed", T2V, {"prompt": "p", "duration": "7"}, "input.duration", '"5", "10"'),
    ("enum-number-for-string", T2V, {"prompt": "p", "duration": 5}, "input.duration", '"5", "10"'),
    ("enum-string-for-number", "runway/gen3", {"prompt": "p", "duration": "5"}, "input.duration", "5, 10"),
    ("enum-bool-for-number", "veo/veo3_fast", {"prompt": "p", "duration": True}, "input.duration", "4, 6, 8"),
    ("boolean-wrong-type", T2V, {"prompt": "p", "sound": "yes"}, "input.sound", "true or false"),
    ("boolean-as-int", T2V, {"prompt": "p", "sound": 1}, "input.sound", "true or false"),
    ("bool-is-not-integer", MJ, {**MJ_INPUT, "stylization": True}, "input.stylization", "whole number"),
    ("bool-is-not-number", TTS, {"text": "t", "stability": False}, "input.stability", "must be a number"),
    ("fraction-for-integer", MJ, {**MJ_INPUT, "stylization": 1.5}, "input.stylization", "whole number"),
    ("string-for-integer", MJ, {**MJ_INPUT, "stylization": "10"}, "input.stylization", "whole number"),
    ("string-for-number", TTS, {"text": "t", "stability": "0.5"}, "input.stability", "must be a number"),
    ("nan-number", TTS, {"text": "t", "stability": math.nan}, "input.stability", "finite"),
    ("infinite-integer", MJ, {**MJ_INPUT, "stylization": math.inf}, "input.stylization", "whole number"),
    ("above-max", MJ, {**MJ_INPUT, "stylization": 1001}, "input.stylization", "at most 1000"),
    ("below-min", MJ, {**MJ_INPUT, "weirdness": -1}, "input.weirdness", "at least 0"),
    ("number-above-max", TTS, {"text": "t", "speed": 1.5}, "input.speed", "at most 1.2"),
    ("number-below-min", TTS, {"text": "t", "speed": 0.5}, "input.speed", "at least 0.7"),
    ("url-wrong-type", LUMA, {"prompt": "p", "videoUrl": 7}, "input.videoUrl", "http or https URL"),
    ("url-ftp", LUMA, {"prompt": "p", "videoUrl": "ftp://x.org/v.mp4"}, "input.videoUrl", "http"),
    ("url-no-host", LUMA, {"prompt": "p", "videoUrl": "https:///v.mp4"}, "input.videoUrl", "host"),
    ("url-not-a-url", LUMA, {"prompt": "p", "videoUrl": "video.mp4"}, "input.videoUrl", "URL"),
    ("url-space", LUMA, {"prompt": "p", "videoUrl": "https://a b.com/v"}, "input.videoUrl", "URL"),
    ("url-bad-port", LUMA, {"prompt": "p", "videoUrl": "http://a.com:99999/"}, "input.videoUrl", "URL"),
    ("url-bad-ipv6", LUMA, {"prompt": "p", "videoUrl": "http://[::1/"}, "input.videoUrl", "URL"),
    ("url-js", LUMA, {"prompt": "p", "videoUrl": "javascript:alert(1)"}, "input.videoUrl", "URL"),
    (
        "url-too-long",
        LUMA,
        {"prompt": "p", "videoUrl": "https://a.com/" + "x" * 5000},
        "input.videoUrl",
        "at most 4096",
    ),
    (
        "url-list-not-list",
        I2V,
        {"prompt": "p", "image_urls": "https://a.com/x.png"},
        "input.image_urls",
        "list of URLs",
    ),
    ("url-list-empty-required", I2V, {"prompt": "p", "image_urls": []}, "input.image_urls", "at least one"),
    (
        "url-list-too-long",
        I2V,
        {"prompt": "p", "image_urls": ["https://a.com/1", "https://a.com/2"]},
        "input.image_urls",
        "at most 1 URL",
    ),
    (
        "url-list-bad-item",
        "seedream/4.5-edit",
        {"prompt": "p", "image_urls": ["https://a.com/1", "nope"]},
        "input.image_urls[1]",
        "URL",
    ),
]


@pytest.mark.parametrize(
    ("model_id", "given_input", "field", "words"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_invalid_input_names_field_and_reason(
    model_id: str, given_input: Any, field: str, words: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        CATALOG.validate(model_id, given_input)
    error = caught.value
    assert error.field == field
    assert words.lower() in error.reason.lower()
    # Reasons are short sentences for end users.
    assert error.reason[0].isupper()
    assert error.reason.endswith(".")
    assert str(error) == f"{field}: {error.reason}"


def test_enum_reason_lists_every_allowed_value() -> None:
    with pytest.raises(InvalidInputError) as caught:
        CATALOG.validate(T2V, {"prompt": "p", "aspect_ratio": "4:3"})
    assert caught.value.reason == 'Must be one of: "1:1", "16:9", "9:16".'


def test_unknown_field_reason_lists_the_accepted_fields() -> None:
    with pytest.raises(InvalidInputError) as caught:
        CATALOG.validate(T2V, {"prompt": "p", "seed": 1})
    assert caught.value.field == "input.seed"
    assert caught.value.reason == "Unknown field. This model accepts: prompt, sound, aspect_ratio, duration."


def test_unknown_field_is_reported_before_other_problems() -> None:
    with pytest.raises(InvalidInputError) as caught:
        CATALOG.validate(T2V, {"colour": "red"})
    assert caught.value.field == "input.colour"


def test_first_problem_in_field_order_is_reported() -> None:
    with pytest.raises(InvalidInputError) as caught:
        CATALOG.validate(T2V, {"duration": "7", "prompt": ""})
    assert caught.value.field == "input.prompt"


# --- malformed catalog files --------------------------------------------------------------------


def _model(**changes: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "test/model",
        "kie_model": "test-model",
        "family": "market",
        "output": "image",
        "title": "Test model",
        "timeout_s": 900,
        "fields": {
            "prompt": {"type": "string", "required": True, "max_length": 100},
            "size": {"type": "enum", "values": ["1:1", "16:9"], "default": "1:1"},
        },
    }
    entry.update(changes)
    return entry


def _with_field(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    entry = _model()
    entry["fields"][name] = spec
    return entry


MALFORMED: list[tuple[str, Any, list[str]]] = [
    # (case id, catalog content, words the error message must contain: model and field)
    ("unknown-type", [_with_field("seed", {"type": "int"})], ["test/model", "seed", "unknown type"]),
    ("missing-type", [_with_field("seed", {"min": 1})], ["test/model", "seed", "unknown type"]),
    ("enum-without-values", [_with_field("mode", {"type": "enum"})], ["test/model", "mode", "values"]),
    (
        "enum-empty-values",
        [_with_field("mode", {"type": "enum", "values": []})],
        ["test/model", "mode", "values"],
    ),
    (
        "enum-mixed-values",
        [_with_field("mode", {"type": "enum", "values": ["a", 1]})],
        ["test/model", "mode", "all strings or all numbers"],
    ),
    (
        "enum-repeated-values",
        [_with_field("mode", {"type": "enum", "values": ["a", "a"]})],
        ["test/model", "mode", "repeat"],
    ),
    (
        "enum-default-not-allowed",
        [_with_field("mode", {"type": "enum", "values": ["a", "b"], "default": "c"})],
        ["test/model", "mode", "default", "fails"],
    ),
    (
        "enum-default-wrong-type",
        [_with_field("mode", {"type": "enum", "values": ["5", "10"], "default": 5})],
        ["test/model", "mode", "default"],
    ),
    (
        "string-default-too-long",
        [_with_field("style", {"type": "string", "max_length": 3, "default": "long"})],
        ["test/model", "style", "default", "at most 3"],
    ),
    (
        "integer-default-out-of-range",
        [_with_field("seed", {"type": "integer", "min": 0, "max": 9, "default": 10})],
        ["test/model", "seed", "default"],
    ),
    (
        "integer-default-bool",
        [_with_field("seed", {"type": "integer", "default": True})],
        ["test/model", "seed", "default"],
    ),
    (
        "url-default-bad",
        [_with_field("image", {"type": "url", "default": "file:///etc/passwd"})],
        ["test/model", "image", "default"],
    ),
    (
        "null-default",
        [_with_field("style", {"type": "string", "default": None})],
        ["test/model", "style", "default"],
    ),
    (
        "required-with-default",
        [_with_field("style", {"type": "string", "required": True, "default": "x"})],
        ["test/model", "style", "required"],
    ),
    (
        "unknown-spec-key",
        [_with_field("style", {"type": "string", "max_len": 3})],
        ["test/model", "style", "max_len"],
    ),
    (
        "key-of-other-type",
        [_with_field("style", {"type": "string", "max_items": 3})],
        ["test/model", "style", "max_items"],
    ),
    (
        "min-above-max",
        [_with_field("seed", {"type": "integer", "min": 5, "max": 1})],
        ["test/model", "seed", "min"],
    ),
    (
        "fractional-integer-bound",
        [_with_field("seed", {"type": "integer", "max": 1.5})],
        ["test/model", "seed", "max"],
    ),
    (
        "negative-max-length",
        [_with_field("style", {"type": "string", "max_length": -1})],
        ["test/model", "style", "max_length"],
    ),
    (
        "zero-max-items",
        [_with_field("urls", {"type": "url_list", "max_items": 0})],
        ["test/model", "urls", "max_items"],
    ),
    (
        "required-not-bool",
        [_with_field("style", {"type": "string", "required": "yes"})],
        ["test/model", "style", "required"],
    ),
    ("bad-field-name", [_with_field("bad name", {"type": "string"})], ["test/model", "bad name"]),
    ("duplicate-id", [_model(), _model()], ["test/model", "id", "more than one"]),
    ("unknown-family", [_model(family="dalle")], ["test/model", "family", "dalle"]),
    ("bad-output", [_model(output="gif")], ["test/model", "output", "gif"]),
    ("missing-kie-model", [_model(kie_model=None)], ["test/model", "kie_model", "required"]),
    (
        "no-kie-model-key",
        [{k: v for k, v in _model().items() if k != "kie_model"}],
        ["test/model", "kie_model", "missing"],
    ),
    ("bad-timeout", [_model(timeout_s=0)], ["test/model", "timeout_s"]),
    ("bool-timeout", [_model(timeout_s=True)], ["test/model", "timeout_s"]),
    ("empty-title", [_model(title=" ")], ["test/model", "title"]),
    ("no-fields", [_model(fields={})], ["test/model", "fields"]),
    ("unknown-model-key", [_model(timeout=5)], ["test/model", "timeout"]),
    ("bad-notes", [_model(notes=["x"])], ["test/model", "notes"]),
    ("missing-id", [{k: v for k, v in _model().items() if k != "id"}], ["model #1", "id"]),
    ("model-not-object", [_model(), "veo"], ["model #2"]),
    ("not-a-list", {"models": [_model()]}, ["list"]),
    ("empty-list", [], ["no models"]),
]


@pytest.mark.parametrize(
    ("content", "words"), [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED]
)
def test_malformed_catalog_is_rejected(tmp_path: Path, content: Any, words: list[str]) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word.lower() in message.lower(), message


def test_duplicate_json_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    text = json.dumps([_model()]).replace('"title": "Test model"', '"title": "A", "title": "B"')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match="'title' appears twice"):
        load_catalog(path)


def test_invalid_json_and_missing_file_are_catalog_errors(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text("[{", encoding="utf-8")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "absent.json")


def test_a_valid_custom_catalog_loads_from_a_string_path(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps([_model(kie_model=None, family="luma", output="video")]), encoding="utf-8")
    catalog = load_catalog(str(path))
    model = catalog.get("test/model")
    assert model.kie_model is None
    assert catalog.validate("test/model", {"prompt": "p"}) == {"prompt": "p", "size": "1:1"}


def test_catalog_built_in_code_rejects_duplicate_ids() -> None:
    model = CATALOG.get(T2V)
    with pytest.raises(CatalogError, match="more than one"):
        Catalog([model, model])


# --- property: inputs built from each model's own specs validate and round-trip -----------------

_TEXT = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
_HOST = st.from_regex(r"[a-z0-9]{1,12}(-[a-z0-9]{1,8})?(\.[a-z]{2,6}){1,2}", fullmatch=True)
_PATH = st.text(alphabet=string.ascii_letters + string.digits + "-._~/%?=&", max_size=40)
_URL = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    _HOST,
    _PATH,
)


def _values_for(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """A strategy for values a user may validly give for ``spec``."""
    if spec.type == "string":
        low = max(spec.min_length or 0, 1 if spec.required else 0)
        high = min(spec.max_length if spec.max_length is not None else 200, max(low, 200))
        text = st.text(alphabet=_TEXT, min_size=low, max_size=high)
        return text.filter(str.strip) if spec.required else text
    if spec.type == "integer":
        return st.integers(min_value=spec.min, max_value=spec.max)
    if spec.type == "number":
        low = math.ceil(spec.min) if spec.min is not None else None
        high = math.floor(spec.max) if spec.max is not None else None
        floats = st.floats(min_value=spec.min, max_value=spec.max, allow_nan=False, allow_infinity=False)
        if low is not None and high is not None and low > high:
            return floats
        return st.one_of(st.integers(min_value=low, max_value=high), floats)
    if spec.type == "boolean":
        return st.booleans()
    if spec.type == "enum":
        return st.sampled_from(spec.values)
    if spec.type == "url":
        return _URL
    if spec.type == "url_list":
        return st.lists(_URL, min_size=1 if spec.required else 0, max_size=spec.max_items or 5)
    raise AssertionError(f"no strategy for {spec.type}")


@pytest.mark.parametrize("model", CATALOG.models(), ids=lambda model: model.id)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_inputs_from_own_specs_validate_and_round_trip(model: Model, data: st.DataObject) -> None:
    given_input: dict[str, Any] = {}
    for spec in model.fields.values():
        if spec.required or data.draw(st.booleans(), label=f"give {spec.name}"):
            given_input[spec.name] = data.draw(_values_for(spec), label=spec.name)
    once = CATALOG.validate(model.id, given_input)
    assert CATALOG.validate(model.id, once) == once
    assert set(model.required) <= set(once)
    for spec in model.fields.values():
        if spec.has_default:
            assert spec.name in once
    # The normalised input goes to KIE and into our database as JSON.
    assert json.loads(json.dumps(once, allow_nan=False)) == once
