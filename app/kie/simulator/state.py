"""What the simulator holds: its configuration, the tasks it was asked for, and its counters.

All state lives on the application (``SIM_STATE``), none in the module.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

CREDITS = 1_000_000
FILES_PREFIX = "/_sim/files/"
UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class SimConfig:
    """How the simulator behaves; fixed for the life of the app."""

    latency: float
    callbacks: str
    fail_rate: float
    rate_limit_rate: float
    api_key: str | None
    webhook_hmac_key: str | None
    public_base_url: str | None
    create_code: int | None = None  # answer every create with this business code (a refusal)
    result_bytes: int | None = None  # serve result files of exactly this size (the asset, padded)
    file_rate: float | None = None  # bytes per second a result file is served at (None: at once)


@dataclass
class SimTask:
    """One generation task, as KIE would remember it."""

    task_id: str
    family: str
    model: str | None
    body: dict[str, Any]  # the whole create request: KIE echoes it as param / paramJson
    callback_url: str | None
    created_mono: float  # event-loop clock: drives progress
    created_wall: float  # Unix seconds: what the answers report
    will_fail: bool
    fail_code: int
    seq: int  # creation order: picks between documented variants (Veo's string or list)
    files: dict[str, list[str]]  # role (video, image, audio, stream, origin) -> absolute URLs
    track_ids: list[str] = field(default_factory=list)  # Suno's per-track ids
    callback_abandoned: bool = False


@dataclass
class SimState:
    """Everything the simulator holds: config, tasks, counters, background deliveries."""

    config: SimConfig
    rng: random.Random
    tasks: dict[str, SimTask] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    windows: dict[str, deque[float]] = field(default_factory=dict)
    max_rates: dict[str, int] = field(default_factory=dict)
    callbacks_sent: int = 0
    callbacks_failed: int = 0
    callbacks_abandoned: int = 0
    callbacks_garbage: int = 0
    seq: int = 0
    deliveries: set[asyncio.Task[object]] = field(default_factory=set)
    session: aiohttp.ClientSession | None = None

    def reset(self) -> None:
        """Forget tasks and counters and cancel pending deliveries (they belong to old tasks)."""
        for task in list(self.deliveries):
            task.cancel()
        self.tasks.clear()
        self.counts.clear()
        self.windows.clear()
        self.max_rates.clear()
        self.callbacks_sent = self.callbacks_failed = 0
        self.callbacks_abandoned = self.callbacks_garbage = 0


SIM_STATE = web.AppKey("kie_sim_state", SimState)


# --- a new task's id and result files -----------------------------------------------------------


def new_task_id(state: SimState, family: str, model: str | None) -> str:
    """Opaque ids in the forms KIE uses: market ``task_<model>_<ms>``, 32 hex digits, UUIDs."""
    while True:
        if family == "market":
            # ``kling-2.6/image-to-video`` -> ``task_kling-2.6_1765182425861``, as in KIE's examples.
            slug = UNSAFE_CHARS.sub("-", (model or "model").split("/")[0]).strip("-") or "model"
            task_id = f"task_{slug}_{int(time.time() * 1000) + state.seq}"
        elif family in ("runway", "aleph", "luma"):
            task_id = str(uuid.UUID(int=state.rng.getrandbits(128), version=4))
        else:
            task_id = f"{state.rng.getrandbits(128):032x}"
        if task_id not in state.tasks:
            return task_id


def _market_kind(model: str | None) -> str:
    """What a market model makes, guessed from its name: image, video, audio or text."""
    name = (model or "").lower()
    if "speech-to-text" in name or "transcri" in name:
        return "text"
    if any(word in name for word in ("eleven", "tts", "text-to-speech", "audio", "music", "sound")):
        return "audio"
    if any(word in name for word in ("video", "sora", "kling", "wan", "hailuo", "veo", "seedance")):
        return "video"
    return "image"


def result_files(base: str, task_id: str, family: str, model: str | None) -> dict[str, list[str]]:
    """Absolute URLs of the task's results, one distinct name per file, fixed at create time."""
    slug = UNSAFE_CHARS.sub("-", task_id).strip("-.") or "task"

    def urls(role: str, ext: str, count: int = 1) -> list[str]:
        return [f"{base}{FILES_PREFIX}{slug}-{role}-{i}.{ext}" for i in range(count)]

    if family == "market":
        kind = _market_kind(model)
        if kind == "text":
            return {}
        return {kind: urls(kind, {"image": "png", "video": "mp4", "audio": "mp3"}[kind])}
    if family in ("veo", "luma"):
        return {"video": urls("video", "mp4")}
    if family in ("runway", "aleph"):
        return {"video": urls("video", "mp4"), "image": urls("image", "png")}
    if family == "suno":
        return {
            "audio": urls("audio", "mp3", 2),
            "stream": urls("stream", "mp3", 2),
            "image": urls("image", "png", 2),
        }
    if family == "flux_kontext":
        return {"image": urls("image", "png"), "origin": urls("origin", "png")}
    if family == "midjourney":
        return {"image": urls("image", "png", 4)}
    return {"image": urls("image", "png")}  # 4o
