"""The shipped catalog says what KIE documents: a source for every model, and the corrections
made against KIE's documentation (each model's notes name the page) held in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.kie.catalog import CatalogError
from app.kie.catalog_loader import CATALOG_PATH, default_catalog, load_catalog

CATALOG = default_catalog()

# Models KIE's 2026 docs index no longer lists: kept, with notes that say so.
ABSENT_FROM_KIE_2026 = (
    "sora-2-text-to-video",
    "elevenlabs/speech-to-text",
    "midjourney/imagine",
    "luma/modify",
)


def _fields(model_id: str) -> dict[str, Any]:
    return dict(CATALOG.get(model_id).fields)


# --- every model names its source ---------------------------------------------------------------


@pytest.mark.parametrize("model", CATALOG.models(), ids=lambda model: model.id)
def test_every_model_names_its_source(model) -> None:  # type: ignore[no-untyped-def]
    assert model.notes and "https://docs.kie.ai/" in model.notes


@pytest.mark.parametrize("model_id", ABSENT_FROM_KIE_2026)
def test_models_gone_from_kies_2026_index_say_so(model_id: str) -> None:
    notes = CATALOG.get(model_id).notes or ""
    assert "Not in KIE's 2026 docs index" in notes
    assert "withdrawn" in notes


@pytest.mark.parametrize(
    "model_id",
    [
        "kling/v2-5-turbo-image-to-video-pro",
        "flux-2/pro-text-to-image",
        "topaz/image-upscale",
        "grok-imagine/text-to-video",
        "elevenlabs/text-to-speech-multilingual-v2",
        "elevenlabs/text-to-speech-turbo-2-5",
        "veo/veo3",
        "veo/veo3_fast",
        "veo/veo3_lite",
        "runway/gen3",
        "aleph/video-to-video",
        "suno/V4_5",
        "suno/V5",
        "suno/V5_5",
    ],
)
def test_resolved_ambiguities_are_recorded(model_id: str) -> None:
    assert "AMBIGUOUS" in (CATALOG.get(model_id).notes or "")


# --- enum labels --------------------------------------------------------------------------------


def test_every_enum_label_names_one_of_its_values() -> None:
    labelled = 0
    for model in CATALOG.models():
        for spec in model.fields.values():
            if not spec.labels:
                continue
            assert spec.type == "enum", f"{model.id}.{spec.name}: labels on a {spec.type}"
            values = {str(value) for value in spec.values}
            for value, label in spec.labels:
                assert value in values, f"{model.id}.{spec.name}: label for unknown value {value!r}"
                assert label.strip() and len(label) <= 100
            labelled += 1
    assert labelled >= 2, "the ElevenLabs voices are labelled"


def _catalog_with_voice_labels(tmp_path: Path, **labels: Any) -> Path:
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    voice = next(m for m in raw if m["id"] == "elevenlabs/text-to-speech-multilingual-v2")["fields"]["voice"]
    voice["labels"].update(labels)
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def test_a_label_for_a_value_the_enum_does_not_have_is_rejected(tmp_path: Path) -> None:
    path = _catalog_with_voice_labels(tmp_path, Rachel="Rachel - not one of the ids")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert str(path) in message
    assert "elevenlabs/text-to-speech-multilingual-v2" in message and "'voice'" in message
    assert "'Rachel'" in message and "not one of the enum's values" in message


def test_a_label_longer_than_100_characters_is_rejected(tmp_path: Path) -> None:
    path = _catalog_with_voice_labels(tmp_path, EkK5I93UQWFDigLMpZcX="J" * 101)
    with pytest.raises(CatalogError, match="at most 100 characters"):
        load_catalog(path)


# --- ElevenLabs ---------------------------------------------------------------------------------


def test_elevenlabs_language_code_only_where_kie_accepts_it() -> None:
    assert "language_code" not in CATALOG.get("elevenlabs/text-to-speech-multilingual-v2").fields
    assert "language_code" in CATALOG.get("elevenlabs/text-to-speech-turbo-2-5").fields


def test_elevenlabs_voice_is_kies_enum_of_ids_with_names() -> None:
    for model_id in ("elevenlabs/text-to-speech-multilingual-v2", "elevenlabs/text-to-speech-turbo-2-5"):
        fields = _fields(model_id)
        voice = fields["voice"]
        assert voice.type == "enum" and len(voice.values) == 67 and not voice.required
        assert voice.default == "EkK5I93UQWFDigLMpZcX"
        assert voice.label("EkK5I93UQWFDigLMpZcX") == "James - Husky, Engaging and Bold"
        assert all(voice.label(value) != value for value in voice.values), "every voice has its name"
        # KIE's other documented optional fields, with KIE's defaults.
        expected = {"stability": 0.5, "similarity_boost": 0.75, "style": 0, "speed": 1}
        assert {name: fields[name].default for name in expected} == expected
        assert {"timestamps", "previous_text", "next_text"} <= set(fields)


# --- video models -------------------------------------------------------------------------------


def test_kling_2_6_text_to_video_prompt_limit() -> None:
    fields = _fields("kling-2.6/text-to-video")
    assert fields["prompt"].max_length == 1000
    assert fields["aspect_ratio"].default == "1:1"  # KIE's default


def test_kling_2_6_image_to_video_takes_jpeg_and_png_only() -> None:
    notes = CATALOG.get("kling-2.6/image-to-video").notes or ""
    assert "jpeg or png only" in notes and "not webp" in notes


def test_reference_to_video_only_on_veo3_fast_and_lite() -> None:
    def types(model_id: str) -> tuple[object, ...]:
        return CATALOG.get(model_id).fields["generationType"].values

    assert "REFERENCE_2_VIDEO" not in types("veo/veo3")
    assert "REFERENCE_2_VIDEO" in types("veo/veo3_fast")
    assert "REFERENCE_2_VIDEO" in types("veo/veo3_lite")


@pytest.mark.parametrize("model_id", ["veo/veo3", "veo/veo3_fast", "veo/veo3_lite"])
def test_veo_fields_as_the_newest_docs_have_them(model_id: str) -> None:
    fields = _fields(model_id)
    assert "aspect_ratio" in fields and "aspectRatio" not in fields
    assert "seeds" not in fields and "enableFallback" not in fields
    assert fields["resolution"].values == ("720p", "1080p", "4k") and fields["resolution"].default == "720p"
    assert fields["duration"].values == (4, 6, 8) and fields["duration"].default == 8


def test_runway_and_aleph() -> None:
    runway = _fields("runway/gen3")
    assert runway["prompt"].max_length == 1800
    assert (runway["duration"].default, runway["quality"].default) == (5, "720p")  # KIE's example
    # KIE requires a ratio for text to video and documents no default: ours is 16:9.
    assert runway["aspectRatio"].default == "16:9"
    aleph = _fields("aleph/video-to-video")
    assert {"aspectRatio", "seed", "referenceImage"} <= set(aleph)
    assert aleph["prompt"].max_length == 2048


def test_wan_hailuo_seedance_and_grok() -> None:
    assert _fields("wan/2-6-text-to-video")["duration"].values == ("5", "10", "15")
    assert not _fields("hailuo/02-text-to-video-pro")["prompt_optimizer"].has_default
    seedance = _fields("bytedance/seedance-1.5-pro")
    assert (seedance["prompt"].min_length, seedance["prompt"].max_length) == (3, 20000)
    assert (seedance["duration"].min, seedance["duration"].max) == (4, 12)
    grok = _fields("grok-imagine/text-to-video")
    assert grok["resolution"].values == ("480p", "720p", "1080p") and grok["resolution"].default == "480p"
    assert (grok["duration"].min, grok["duration"].max) == (6, 30)
    assert grok["aspect_ratio"].values == ("2:3", "3:2", "1:1", "16:9", "9:16")


# --- image models -------------------------------------------------------------------------------


def test_flux_2_text_to_image_offers_no_auto_but_image_to_image_does() -> None:
    assert "auto" not in CATALOG.get("flux-2/pro-text-to-image").fields["aspect_ratio"].values
    image_to_image = CATALOG.get("flux-2/pro-image-to-image").fields["aspect_ratio"]
    assert "auto" in image_to_image.values
    assert image_to_image.default == "1:1"  # KIE's default, not auto


def test_nano_banana_uses_aspect_ratio_not_the_deprecated_image_size() -> None:
    for model_id in ("google/nano-banana", "google/nano-banana-edit", "nano-banana-pro"):
        fields = CATALOG.get(model_id).fields
        assert "image_size" not in fields and "aspect_ratio" in fields
    assert "image_input" in CATALOG.get("nano-banana-pro").fields


def test_seedream_imagen_and_flux_kontext() -> None:
    assert _fields("seedream/4.5-edit")["image_urls"].max_items == 14
    imagen = _fields("google/imagen4")
    assert "auto" in imagen["aspect_ratio"].values and imagen["seed"].type == "string"
    for model_id in ("flux-kontext-pro", "flux-kontext-max"):
        kontext = _fields(model_id)
        assert kontext["aspectRatio"].default == "16:9" and kontext["safetyTolerance"].default == 2
        assert kontext["enableTranslation"].default is True


def test_4o_offers_only_the_documented_fields() -> None:
    fields = _fields("4o/image")
    assert set(fields) == {"prompt", "filesUrl", "size"}
    assert fields["filesUrl"].max_items == 5
    assert fields["size"].values == ("1:1", "3:2", "2:3")


def test_midjourney_defaults() -> None:
    fields = _fields("midjourney/imagine")
    # KIE requires speed and documents no default: ours is the cheapest.
    assert fields["speed"].default == "relaxed"
    assert not fields["aspectRatio"].has_default and not fields["version"].has_default
    assert fields["taskType"].default == "mj_txt2img" and fields["enableTranslation"].default is False


# --- Suno ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_id", ["suno/V4_5", "suno/V5", "suno/V5_5"])
def test_suno_mode_flags_default_to_simple_mode(model_id: str) -> None:
    # KIE requires both and documents no default; a prompt alone must still make a song.
    model = CATALOG.get(model_id)
    assert model.required == ["prompt"]
    assert (model.fields["customMode"].default, model.fields["instrumental"].default) == (False, False)
    assert ("personaModel" in model.fields) == (model_id != "suno/V4_5")


def test_suno_v5_5_duration() -> None:
    model = CATALOG.get("suno/V5_5")
    assert model.kie_model == "V5_5" and model.family == "suno"
    duration = model.fields["duration"]
    # KIE's default 20 applies when none is sent, and only in custom mode: we send none.
    assert (duration.min, duration.max, duration.has_default) == (10, 360, False)


# --- the models added ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "output"),
    [
        ("veo/veo3_lite", "video"),
        ("kling/v2-5-turbo-text-to-video-pro", "video"),
        ("kling/v2-5-turbo-image-to-video-pro", "video"),
        ("bytedance/seedance-1.5-pro", "video"),
        ("hailuo/2-3-image-to-video-pro", "video"),
        ("wan/2-5-text-to-video", "video"),
        ("nano-banana-pro", "image"),
        ("bytedance/seedream-v4-text-to-image", "image"),
        ("bytedance/seedream-v4-edit", "image"),
        ("ideogram/v3-text-to-image", "image"),
        ("recraft/remove-background", "image"),
        ("topaz/image-upscale", "image"),
        ("elevenlabs/text-to-speech-turbo-2-5", "audio"),
        ("suno/V5_5", "audio"),
    ],
)
def test_the_models_people_ask_for_are_offered(model_id: str, output: str) -> None:
    model = CATALOG.get(model_id)
    assert model.output == output
    if model.family == "market":
        assert model.kie_model == model_id  # our public id is KIE's model id


def test_veo3_lite_is_a_veo_model() -> None:
    model = CATALOG.get("veo/veo3_lite")
    assert (model.family, model.kie_model) == ("veo", "veo3_lite")


def test_the_readme_lists_every_model() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [model.id for model in CATALOG.models() if f"| `{model.id}` |" not in readme]
    assert not missing, f"README's model list lacks {missing}"
