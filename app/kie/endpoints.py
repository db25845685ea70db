"""KIE's create and status endpoints, per model family."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyEndpoints:
    """Where one family creates tasks and reports on them."""

    create: str
    status: str
    # How the create body carries our input: "wrapped" puts it under "input" next to "model"
    # (market); "flat" merges it into the top level of the body.
    body: str = "flat"
    # Whether the create body names the model (market, veo, suno and midjourney do).
    sends_model: bool = True


ENDPOINTS: dict[str, FamilyEndpoints] = {
    "market": FamilyEndpoints("/api/v1/jobs/createTask", "/api/v1/jobs/recordInfo", body="wrapped"),
    "veo": FamilyEndpoints("/api/v1/veo/generate", "/api/v1/veo/record-info"),
    "runway": FamilyEndpoints("/api/v1/runway/generate", "/api/v1/runway/record-detail", sends_model=False),
    "aleph": FamilyEndpoints("/api/v1/aleph/generate", "/api/v1/aleph/record-info", sends_model=False),
    "suno": FamilyEndpoints("/api/v1/generate", "/api/v1/generate/record-info"),
    "4o": FamilyEndpoints(
        "/api/v1/gpt4o-image/generate", "/api/v1/gpt4o-image/record-info", sends_model=False
    ),
    "flux_kontext": FamilyEndpoints("/api/v1/flux/kontext/generate", "/api/v1/flux/kontext/record-info"),
    "midjourney": FamilyEndpoints("/api/v1/mj/generate", "/api/v1/mj/record-info", sends_model=False),
    "luma": FamilyEndpoints("/api/v1/modify/generate", "/api/v1/modify/record-info", sends_model=False),
}

CREDITS_PATH = "/api/v1/chat/credit"
DOWNLOAD_URL_PATH = "/api/v1/common/download-url"
