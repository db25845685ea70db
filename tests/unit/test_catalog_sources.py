"""The shipped catalog says what KIE documents: a source for every model, and the corrections
issue 10 made against KIE's documentation held in place."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.kie.catalog import CatalogError
from app.kie.catalog_loader import CATALOG_PATH, default_catalog, load_catalog

CATALOG = default_catalog()


@pytest.mark.parametrize("model", CATALOG.models(), ids=lambda model: model.id)
def test_every_model_names_its_source(model) -> None:  # type: ignore[no-untyped-def]
    assert model.notes and "https://docs.kie.ai/" in model.notes


def test_elevenlabs_language_code_only_where_kie_accepts_it() -> None:
    assert "language_code" not in CATALOG.get("elevenlabs/text-to-speech-multilingual-v2").fields
    assert "language_code" in CATALOG.get("elevenlabs/text-to-speech-turbo-2-5").fields


def test_elevenlabs_voice_is_kies_enum_of_ids_with_names() -> None:
    for model_id in ("elevenlabs/text-to-speech-multilingual-v2", "elevenlabs/text-to-speech-turbo-2-5"):
        voice = CATALOG.get(model_id).fields["voice"]
        assert voice.type == "enum" and len(voice.values) == 67
        assert voice.default == "EkK5I93UQWFDigLMpZcX"
        assert voice.label("EkK5I93UQWFDigLMpZcX").startswith("James")
        assert all(voice.label(value) != value for value in voice.values), "every voice has its name"


def test_kling_2_6_text_to_video_prompt_limit() -> None:
    assert CATALOG.get("kling-2.6/text-to-video").fields["prompt"].max_length == 1000


def test_reference_to_video_only_on_veo3_fast_and_lite() -> None:
    def types(model_id: str) -> tuple[object, ...]:
        return CATALOG.get(model_id).fields["generationType"].values

    assert "REFERENCE_2_VIDEO" not in types("veo/veo3")
    assert "REFERENCE_2_VIDEO" in types("veo/veo3_fast")
    assert "REFERENCE_2_VIDEO" in types("veo/veo3_lite")


def test_flux_2_text_to_image_offers_no_auto_but_image_to_image_does() -> None:
    assert "auto" not in CATALOG.get("flux-2/pro-text-to-image").fields["aspect_ratio"].values
    assert "auto" in CATALOG.get("flux-2/pro-image-to-image").fields["aspect_ratio"].values


def test_nano_banana_uses_aspect_ratio_not_the_deprecated_image_size() -> None:
    for model_id in ("google/nano-banana", "google/nano-banana-edit", "nano-banana-pro"):
        fields = CATALOG.get(model_id).fields
        assert "image_size" not in fields and "aspect_ratio" in fields
    assert "image_input" in CATALOG.get("nano-banana-pro").fields


def test_4o_offers_only_the_documented_fields() -> None:
    assert set(CATALOG.get("4o/image").fields) == {"prompt", "filesUrl", "size"}


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
    assert CATALOG.get(model_id).output == output


def test_a_label_for_a_value_the_enum_does_not_have_is_rejected(tmp_path: Path) -> None:
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    voice = next(m for m in raw if m["id"] == "elevenlabs/text-to-speech-multilingual-v2")["fields"]["voice"]
    voice["labels"]["Rachel"] = "Rachel - not one of the ids"
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert (
        "elevenlabs/text-to-speech-multilingual-v2" in message and "voice" in message and "Rachel" in message
    )


def test_the_readme_lists_every_model() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [model.id for model in CATALOG.models() if f"| `{model.id}` |" not in readme]
    assert not missing, f"README's model list lacks {missing}"
