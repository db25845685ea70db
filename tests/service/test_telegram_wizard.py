# ruff: noqa: RUF001 - the Russian texts are Cyrillic on purpose
"""The conversation of part 2, driven as a user would (messages and button presses) through the
fake Bot API and the real aiogram client, against the in-process service and the KIE simulator.

The wizard cases (``CASES``) are data: a catalog model, what the user does, and the input the
generation must get. Together they cover every family of the catalog and every field kind the
wizard knows (checked by ``test_the_wizard_cases_cover_every_family_and_field_kind``). The models
whose whole wizard is driven here, up to a delivered result (``COVERED_MODELS``):

- market: kling-2.6/text-to-video, kling-2.6/image-to-video, hailuo/2-3-image-to-video-pro,
  bytedance/seedream-v4-edit, qwen/text-to-image, elevenlabs/text-to-speech-multilingual-v2,
  flux-2/pro-text-to-image, recraft/remove-background, google/nano-banana;
- veo: veo/veo3_fast; suno: suno/V5; flux_kontext: flux-kontext-pro; runway: runway/gen3;
  aleph: aleph/video-to-video; 4o: 4o/image; midjourney: midjourney/imagine; luma: luma/modify.

elevenlabs/speech-to-text (the only model with an audio input; its result is text) is listed
under Music and its transcript is delivered as the message.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from app.kie.catalog_loader import default_catalog
from app.kie.simulator import SIM_STATE, make_app
from app.kie.simulator.assets import FILES, build_png
from app.kie.simulator.state import SimState
from app.telegram.fields import integer_choices, media_kind
from tests.support.fake_telegram import ChatMessage, FakeBotApi, FakeUser, iter_buttons
from tests.support.stack import ServerFactory, Stack, stack_on
from tests.support.telegram_stack import BotStack, delivered, generations_of, update_states
from tests.support.telegram_user import TelegramUser

PNG = FILES["png"][1]
MP4 = FILES["mp4"][1]
MP3 = FILES["mp3"][1]
RED, GREEN, BLUE = build_png(8, (200, 30, 30)), build_png(8, (30, 200, 30)), build_png(8, (30, 30, 200))
SIGNED = re.compile(r"/files/[0-9a-f-]{36}/[^/?]+\?exp=\d+&sig=[A-Za-z0-9_-]+$")
EXPIRED = "This menu has expired. Here is a fresh one."


# --- the stack, with the simulator in reach ------------------------------------------------------


@dataclass
class Service:
    """The in-process service with its bot, and the KIE simulator it talks to."""

    stack: Stack
    kie: TestServer

    @property
    def sim(self) -> SimState:
        state: SimState = self.kie.app[SIM_STATE]
        return state


StartService = Callable[..., Awaitable[Service]]


@pytest.fixture
def service(
    aiohttp_server: ServerFactory, http: aiohttp.ClientSession, database_url: str, tmp_path: Path
) -> StartService:
    """Starts the service with the bot polling ``fake``, against a simulator of ``latency`` s."""

    async def start(fake: FakeBotApi, *, latency: float = 0.2, **env: str) -> Service:
        kie = await aiohttp_server(make_app(latency=latency))
        stack = await stack_on(
            aiohttp_server,
            http,
            database_url,
            tmp_path,
            kie,
            TELEGRAM_BOT_TOKEN=fake.token,
            TELEGRAM_API_BASE=fake.base_url,
            TELEGRAM_MODE="polling",
            **env,
        )
        return Service(stack, kie)

    return start


@pytest.fixture(autouse=True)
def every_button_fits(fake: FakeBotApi) -> Iterator[None]:
    """After each test: every button the bot sent carries at most Telegram's 64 bytes of data."""
    yield
    seen = 0
    for call in fake.calls():
        markup = call.params.get("reply_markup")
        if isinstance(markup, dict):
            for button in iter_buttons(markup):
                data = button.get("callback_data")
                if data is not None:
                    seen += 1
                    assert len(str(data).encode()) <= 64, (call.method, data)
    assert seen or not fake.calls("sendMessage"), "the bot showed no button at all"


# --- moving around -----------------------------------------------------------------------------


def text_of(message: ChatMessage) -> str:
    return message.text or message.caption or ""


def last_text(user: TelegramUser) -> str:
    return text_of(user.bot_messages()[-1])


async def open_model(user: TelegramUser, kind: str, title: str) -> None:
    """From /start, through the kind's pages, to the model's card, and Start."""
    await user.command("start")
    await user.press(kind)
    for _ in range(10):
        labels = [label for label, _ in user.buttons()]
        if title in labels:
            await user.press(title, exact=True)
            await user.press("Start")
            return
        await user.press("More")
    raise AssertionError(f"{title} is on no page")


async def open_anywhere(user: TelegramUser, title: str) -> None:
    """Like :func:`open_model`, looking through every kind of the main menu."""
    await user.command("start")
    kinds = [label for label, data in user.buttons() if data.startswith("mn:") and data != "mn:help"]
    for kind in kinds:
        if kind == "History":
            continue
        try:
            await open_model(user, kind, title)
            return
        except AssertionError:
            continue
    raise AssertionError(f"{title} is in no menu ({kinds})")


async def finish(user: TelegramUser, stack: Stack) -> dict[str, Any]:
    """Generate, Confirm, and the generation the bot started."""
    await user.press("Generate")
    assert last_text(user).startswith("Ready to start"), last_text(user)
    await user.press("Confirm")
    [row] = await delivered(stack)
    assert row["state"] == "delivered" and row["message_ids"], dict(row)
    [generation] = await generations_of(stack, user.chat_id)
    # The result arrived as what the model makes: the status message became it, or an album came.
    output = default_catalog().get(generation["model"]).output
    sent = [user.fake.message(user.chat_id, int(i)) for i in row["message_ids"]]
    kinds = {m.kind for m in sent}
    assert kinds == {{"image": "photo", "video": "video", "audio": "audio"}.get(output, "text")}, kinds
    if row["outcome"] in ("edited", "notified"):  # notified: a text result (a transcript) in words
        assert int(row["status_message_id"]) == sent[0].message_id and "Done" in text_of(sent[0])
        if output == "text":
            assert "simulated transcript" in text_of(sent[0]), text_of(sent[0])
    else:
        assert row["outcome"] == "group" and len({m.media_group_id for m in sent}) == 1, dict(row)
    return dict(generation)


async def fetch(stack: Stack, url: str) -> bytes:
    """The bytes behind one of our signed links, fetched as KIE would (no API key)."""
    async with stack.session.get(url) as resp:
        assert resp.status == 200, (url, resp.status)
        return await resp.read()


async def settled(stack: Stack, timeout: float = 10) -> set[str]:
    """The states of the stored updates once none is pending (the reply comes before "done")."""
    deadline = time.monotonic() + timeout
    while "pending" in (states := set(await update_states(stack))) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return states


def task_bodies(service: Service) -> str:
    """Everything the simulator's tasks received, as one JSON text."""
    return json.dumps([task.body for task in service.sim.tasks.values()])


# --- the wizard cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Say:
    """Type an answer."""

    text: str


@dataclass(frozen=True)
class Photo:
    """Send a photo."""

    data: bytes = PNG


@dataclass(frozen=True)
class Document:
    """Send a file as a document."""

    data: bytes
    name: str
    mime: str


@dataclass(frozen=True)
class Press:
    """Press the button with exactly this label on the newest message with buttons."""

    label: str


@dataclass(frozen=True)
class Open:
    """On the settings screen, open the setting ``field``."""

    field: str


@dataclass(frozen=True)
class Wrong:
    """A wrong answer: a message containing ``says``, then the same question again."""

    answer: Say | Photo | Document
    says: str


Step = Say | Photo | Document | Press | Open | Wrong

VIDEO = Document(MP4, "clip.mp4", "video/mp4")
AUDIO = Document(MP3, "voice.mp3", "audio/mpeg")


@dataclass(frozen=True)
class Upload:
    """In an expected input: one of our signed links, to a file with exactly these bytes."""

    data: bytes


async def send(user: TelegramUser, answer: Say | Photo | Document, replies: int) -> list[ChatMessage]:
    if isinstance(answer, Say):
        return await user.say(answer.text, replies=replies)
    if isinstance(answer, Photo):
        return await user.photo(answer.data, replies=replies)
    return await user.document(answer.data, answer.name, answer.mime, replies=replies)


async def run(user: TelegramUser, steps: tuple[Step, ...]) -> None:
    """Carry the steps out, checking each question and each wrong answer's message."""
    for step in steps:
        if isinstance(step, Wrong):
            question = user.bot_messages()[-1]
            error, again = await send(user, step.answer, replies=2)
            assert step.says in text_of(error), (step, text_of(error))
            # The wizard stays on the step: the same question, with the same buttons.
            assert text_of(again) == text_of(question) and again.reply_markup == question.reply_markup
        elif isinstance(step, Press):
            await user.press(step.label, exact=True)
        elif isinstance(step, Open):
            await user.press(f"{step.field}:")
            assert step.field in last_text(user), (step, last_text(user))
        else:
            await send(user, step, replies=1)


async def resolved(stack: Stack, expected: Any, actual: Any, where: str = "input") -> Any:
    """``expected`` with each Upload replaced by the link found in ``actual``, once that link is
    checked: ours, signed, and serving exactly the bytes the user sent."""
    if isinstance(expected, Upload):
        assert isinstance(actual, str) and actual.startswith(stack.base_url + "/files/"), (where, actual)
        assert SIGNED.search(actual), (where, actual)
        assert await fetch(stack, actual) == expected.data, where
        return actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: await resolved(stack, v, actual.get(k), f"{where}.{k}") for k, v in expected.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [
            await resolved(stack, e, a, f"{where}[{i}]")
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
        ]
    return expected


@dataclass(frozen=True)
class Case:
    model: str
    kind: str  # the main menu button
    steps: tuple[Step, ...]
    input: dict[str, Any]  # what the generation gets: the answers plus the catalog's defaults


PROMPT = "a lighthouse on a cliff at dusk"

CASES = [
    Case(
        "kling-2.6/image-to-video",  # url_list of one image: the photo ends the question
        "Video",
        (Say(PROMPT), Photo(RED), Open("duration"), Press("10"), Open("sound"), Press("on")),
        {"prompt": PROMPT, "image_urls": [Upload(RED)], "sound": True, "duration": "10"},
    ),
    Case(
        "hailuo/2-3-image-to-video-pro",  # url: one image, text instead of it is refused
        "Video",
        (Say(PROMPT), Wrong(Say("here it is"), "That is not what image needs"), Photo(GREEN)),
        {"prompt": PROMPT, "image_url": Upload(GREEN), "duration": "6", "resolution": "768P"},
    ),
    Case(
        "bytedance/seedream-v4-edit",  # url_list of several images then Done; integer buttons; typed
        "Image",
        (
            Say(PROMPT),
            Photo(RED),
            Document(GREEN, "green.png", "image/png"),  # an image sent as a file counts too
            Photo(BLUE),
            Press("Done"),
            Open("max_images"),
            Press("3"),
            Open("seed"),
            Wrong(Say("abc"), "That is not a number from -∞ to ∞"),
            Say("42"),
        ),
        {
            "prompt": PROMPT,
            "image_urls": [Upload(RED), Upload(GREEN), Upload(BLUE)],
            "image_size": "square_hd",
            "image_resolution": "1K",
            "max_images": 3,
            "seed": 42,
        },
    ),
    Case(
        "qwen/text-to-image",  # integer typed with a range; number typed with a range
        "Image",
        (
            Say(PROMPT),
            Open("num_inference_steps"),
            Wrong(Say("1"), "That is not a number from 2 to 250"),
            Wrong(Say("251"), "That is not a number from 2 to 250"),
            Wrong(Say("40.5"), "That is not a number from 2 to 250"),
            Say("40"),
            Open("guidance_scale"),
            Wrong(Say("20.5"), "That is not a number from 0 to 20"),
            Say("7,5"),
        ),
        {
            "prompt": PROMPT,
            "image_size": "square_hd",
            "num_inference_steps": 40,
            "guidance_scale": 7.5,
            "output_format": "png",
            "acceleration": "none",
        },
    ),
    Case(
        "elevenlabs/text-to-speech-multilingual-v2",  # the text is not called prompt; labelled enum
        "Music",
        (
            Say("Hello there, general."),
            Open("voice"),
            Press("Bella - Professional, Bright, Warm"),
            Open("speed"),
            Wrong(Say("2"), "That is not a number from 0.7 to 1.2"),
            Say("0.9"),
        ),
        {
            "text": "Hello there, general.",
            "voice": "hpp4J3VqNfWAUOO0d1Us",
            "stability": 0.5,
            "similarity_boost": 0.75,
            "style": 0,
            "speed": 0.9,
        },
    ),
    Case(
        "flux-2/pro-text-to-image",  # a prompt's minimum length; a photo is not text
        "Image",
        (
            Wrong(Photo(), "That is not text. Send prompt as text (up to 5000 characters)."),
            Wrong(Say("ab"), "prompt needs at least 3 characters"),
            Say("a red fox"),
        ),
        {"prompt": "a red fox", "aspect_ratio": "1:1", "resolution": "1K"},
    ),
    Case(
        "recraft/remove-background",  # no prompt at all: only an image
        "Image",
        (Photo(BLUE),),
        {"image": Upload(BLUE)},
    ),
    Case(
        "veo/veo3_fast",  # an optional url_list from the settings; an enum of numbers
        "Video",
        (
            Say(PROMPT),
            Open("imageUrls"),
            Photo(RED),
            Photo(GREEN),
            Press("Done"),
            Open("generationType"),
            Press("FIRST_AND_LAST_FRAMES_2_VIDEO"),
            Open("duration"),
            Press("4"),
        ),
        {
            "prompt": PROMPT,
            "imageUrls": [Upload(RED), Upload(GREEN)],
            "aspect_ratio": "16:9",
            "generationType": "FIRST_AND_LAST_FRAMES_2_VIDEO",
            "resolution": "720p",
            "duration": 4,
        },
    ),
    Case(
        "suno/V5",  # booleans, an enum, a number from 0 to 1
        "Music",
        (
            Say("a song about the sea"),
            Open("instrumental"),
            Press("on"),
            Open("vocalGender"),
            Press("f"),
            Open("styleWeight"),
            Wrong(Say("1.5"), "That is not a number from 0 to 1"),
            Wrong(Say("heavy"), "That is not a number from 0 to 1"),
            Say("0.65"),
        ),
        {
            "prompt": "a song about the sea",
            "customMode": False,
            "instrumental": True,
            "vocalGender": "f",
            "styleWeight": 0.65,
        },
    ),
    Case(
        "flux-kontext-pro",  # an optional image; integer buttons from 0; a boolean
        "Image",
        (
            Say(PROMPT),
            Open("inputImage"),
            Photo(GREEN),
            Open("safetyTolerance"),
            Press("5"),
            Open("promptUpsampling"),
            Press("on"),
        ),
        {
            "prompt": PROMPT,
            "inputImage": Upload(GREEN),
            "aspectRatio": "16:9",
            "outputFormat": "jpeg",
            "promptUpsampling": True,
            "enableTranslation": True,
            "safetyTolerance": 5,
        },
    ),
    Case(
        "runway/gen3",  # an optional image; an optional text, typed, then skipped and typed again
        "Video",
        (
            Say(PROMPT),
            Open("imageUrl"),
            Photo(RED),
            Open("duration"),
            Press("10"),
            Open("waterMark"),
            Say("first mark"),
            Open("waterMark"),
            Press("Skip"),
            Open("waterMark"),
            Say("my mark"),
        ),
        {
            "prompt": PROMPT,
            "imageUrl": Upload(RED),
            "aspectRatio": "16:9",
            "duration": 10,
            "quality": "720p",
            "waterMark": "my mark",
        },
    ),
    Case(
        "aleph/video-to-video",  # a video by document (a photo refused); a large integer range
        "Video",
        (
            Say(PROMPT),
            Wrong(Photo(), "That is not what video needs"),
            VIDEO,
            Open("seed"),
            Wrong(Say("-1"), "That is not a number from 0 to 4294967295"),
            Say("123456"),
        ),
        {"prompt": PROMPT, "videoUrl": Upload(MP4), "seed": 123456},
    ),
    Case(
        "4o/image",  # an optional url_list of one photo, then Done
        "Image",
        (Say(PROMPT), Open("filesUrl"), Photo(BLUE), Press("Done"), Open("size"), Press("3:2")),
        {"prompt": PROMPT, "filesUrl": [Upload(BLUE)], "size": "3:2"},
    ),
    Case(
        "midjourney/imagine",  # Back to the prompt; a typed integer; an enum; Skip
        "Image",
        (
            Say("four cats"),
            Press("Back"),
            Say("four owls"),
            Open("version"),
            Press("niji6"),
            Open("stylization"),
            Wrong(Say("1001"), "That is not a number from 0 to 1000"),
            Say("250"),
            Open("variety"),
            Press("Skip"),
        ),
        {
            "prompt": "four owls",
            "taskType": "mj_txt2img",
            "speed": "relaxed",
            "version": "niji6",
            "stylization": 250,
            "enableTranslation": False,
        },
    ),
    Case(
        "luma/modify",  # a video by document; an optional text
        "Video",
        (Say(PROMPT), VIDEO, Open("watermark"), Say("wm")),
        {"prompt": PROMPT, "videoUrl": Upload(MP4), "watermark": "wm"},
    ),
    Case(
        "elevenlabs/speech-to-text",  # an audio file by document (the only audio input)
        "Music",
        (Wrong(Photo(), "That is not what audio needs"), AUDIO, Open("diarize"), Press("on")),
        {"audio_url": Upload(MP3), "tag_audio_events": True, "diarize": True},
    ),
]

UNREACHABLE: dict[str, str] = {}  # models the wizard cannot reach (none now)

# The models driven through the whole wizard up to a delivered result (listed in the docstring too).
COVERED_MODELS = sorted(
    {case.model for case in CASES if case.model not in UNREACHABLE}
    | {"kling-2.6/text-to-video", "google/nano-banana"}
)


def field_kinds(case: Case) -> set[str]:
    """The field kinds a case answers (the catalog's types, integers and urls told apart)."""
    model = default_catalog().get(case.model)
    answered = {step.field for step in case.steps if isinstance(step, Open)} | set(model.required)
    kinds = set()
    for name in answered:
        spec = model.fields[name]
        if spec.type == "integer":
            kinds.add("integer buttons" if integer_choices(spec) else "integer typed")
        elif spec.type in ("url", "url_list"):
            kinds.add(f"{spec.type} {media_kind(spec)}")
        else:
            kinds.add(spec.type)
    return kinds


def test_the_wizard_cases_cover_every_family_and_field_kind() -> None:
    catalog = default_catalog()
    families = {model.family for model in catalog.models()}
    assert {catalog.get(model).family for model in COVERED_MODELS} == families
    covered = set().union(*(field_kinds(case) for case in CASES))
    assert covered >= {
        "string",
        "enum",
        "boolean",
        "integer buttons",
        "integer typed",
        "number",
        "url image",
        "url video",
        "url audio",
        "url_list image",
    }, covered
    assert all(model in (__doc__ or "") for model in COVERED_MODELS)  # the docstring lists them all
    # Every kind of field in the catalog is among them.
    present = {kind for model in catalog.models() for kind in field_kinds(Case(model.id, "", (), {}))}
    assert present <= covered, present - covered


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case, id=case.model, marks=[pytest.mark.xfail(strict=True, reason=UNREACHABLE[case.model])]
        )
        if case.model in UNREACHABLE
        else pytest.param(case, id=case.model)
        for case in CASES
    ],
)
async def test_the_wizard_of_a_model_gives_kie_exactly_what_was_chosen(
    case: Case, service: StartService, fake: FakeBotApi
) -> None:
    running = await service(fake)
    stack = running.stack
    model = default_catalog().get(case.model)
    user = TelegramUser(fake)
    if case.model in UNREACHABLE:
        await open_anywhere(user, model.title)
    else:
        await open_model(user, case.kind, model.title)
    await run(user, case.steps)
    assert "tap a setting" in last_text(user), last_text(user)
    generation = await finish(user, stack)
    assert generation["model"] == case.model and generation["state"] == "succeeded", generation
    actual = json.loads(generation["input"]) if isinstance(generation["input"], str) else generation["input"]
    assert actual == await resolved(stack, case.input, actual)
    # KIE got our signed links, never Telegram's file URL (it holds the bot's token).
    bodies = task_bodies(running)
    assert "/file/bot" not in bodies and fake.token.split(":", 1)[1] not in bodies
    for value in actual.values():
        for url in value if isinstance(value, list) else [value]:
            if isinstance(url, str) and url.startswith(stack.base_url + "/files/"):
                assert json.dumps(url) in bodies, url
    if model.output == "text":
        assert any("simulated transcript" in text_of(m) for m in user.bot_messages())
    assert await settled(stack) == {"done"}


async def test_a_text_to_video_wizard_with_a_prompt_a_toggle_and_an_enum(
    bot_stack: BotStack, fake: FakeBotApi
) -> None:
    stack = await bot_stack(fake, "polling")
    user = TelegramUser(fake)
    await open_model(user, "Video", "Kling 2.6 text to video")
    assert user.bot_messages()[-1].text.startswith("Send prompt")  # type: ignore[union-attr]
    wrong, again = await user.say("x" * 1001, replies=2)
    assert "at most 1000" in (wrong.text or "") and (again.text or "").startswith("Send prompt")
    await user.say("a fox in the snow", replies=1)
    settings = user.bot_messages()[-1]
    assert "tap a setting" in (settings.text or "")
    await user.press("aspect_ratio")
    await user.press("16:9", exact=True)
    await user.press("sound")
    await user.press("on", exact=True)
    generation = await finish(user, stack)
    assert generation["model"] == "kling-2.6/text-to-video"
    assert generation["input"] == {
        "prompt": "a fox in the snow",
        "sound": True,
        "aspect_ratio": "16:9",
        "duration": "5",
    }


# --- photos: our signed link, never Telegram's; the 20 MB limit -------------------------------


async def test_a_photo_for_image_to_video_reaches_kie_as_our_signed_link_and_never_as_telegrams(
    service: StartService, fake: FakeBotApi
) -> None:
    running = await service(fake)
    stack = running.stack
    user = TelegramUser(fake)
    await open_model(user, "Video", "Kling 2.6 image to video")
    await user.say(PROMPT)
    assert last_text(user).startswith("Send up to 1 photos for image_urls"), last_text(user)
    photo = build_png(16, (10, 20, 30))
    await user.photo(photo)
    # Fetched with getFile, then downloaded by the service itself (the URL never left it).
    [get_file] = fake.calls("getFile")
    file_path = get_file.result["file_path"]
    assert [d.file_path for d in fake.downloads()] == [file_path]
    generation = await finish(user, stack)
    [url] = generation["input"]["image_urls"]
    assert url.startswith(stack.base_url + "/files/") and SIGNED.search(url), url
    [task] = running.sim.tasks.values()
    assert task.body["input"]["image_urls"] == [url]
    body = json.dumps(task.body)
    assert "/file/bot" not in body and file_path not in body and fake.token.split(":", 1)[1] not in body
    assert await fetch(stack, url) == photo
    upload = await stack.pool.fetchrow("SELECT * FROM uploads")
    assert upload["owner"] == f"telegram:{user.chat_id}" and upload["bytes"] == len(photo)
    assert url.split("?", 1)[0].endswith(f"/files/{upload['id']}/{upload['name']}")


async def test_an_image_over_telegrams_20_mb_limit_gets_a_clear_message_and_the_question_again(
    service: StartService, fake: FakeBotApi
) -> None:
    running = await service(fake)
    user = TelegramUser(fake)
    await open_model(user, "Video", "Kling 2.6 image to video")
    await user.say(PROMPT)
    question = last_text(user)
    huge = PNG + bytes(21 * 1024 * 1024 - len(PNG))
    too_large = "That file is 21.0 MB; Telegram lets bots fetch at most 20 MB. Send a smaller one."
    for send_it in (
        lambda: user.document(huge, "huge.png", "image/png", replies=2),
        lambda: user.photo(huge, replies=2),
    ):
        error, again = await send_it()
        assert error.text == too_large and again.text == question
    assert fake.calls("getFile") == [] and fake.downloads() == []  # refused before any download
    # Telegram leaves file_size out at times: then getFile itself refuses ("file is too big").
    update = fake.make_document_message(huge, file_name="huge.png", mime_type="image/png", user=user.user)
    del update["message"]["document"]["file_size"]
    error, again = await user.send_update(update, replies=2)
    assert error.text == too_large.replace("21.0 MB", ">20 MB") and again.text == question, error.text
    await user.photo(PNG)
    generation = await finish(user, running.stack)
    assert len(generation["input"]["image_urls"]) == 1
    assert await settled(running.stack) == {"done"}


# --- history and repeat --------------------------------------------------------------------------

NANO = "Nano Banana (Gemini 2.5 Flash Image)"


async def confirm(user: TelegramUser) -> None:
    """Generate, then Confirm: the status message and "Started"."""
    await user.press("Generate")
    assert last_text(user).startswith("Ready to start"), last_text(user)
    await user.press("Confirm", replies=2)


def result_message(user: TelegramUser, row: Any) -> ChatMessage:
    """The message a generation's result replaced its status message with."""
    return user.fake.message(user.chat_id, int(row["status_message_id"]))


async def test_history_lists_newest_first_resends_and_repeats_with_the_same_or_a_new_prompt(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake)).stack
    user = TelegramUser(fake)
    await open_model(user, "Image", NANO)
    await user.say("a red bicycle")
    await run(user, (Open("aspect_ratio"), Press("16:9"), Open("output_format"), Press("jpeg")))
    await confirm(user)
    await delivered(stack, 1)
    await user.command("imagine", "a kite")
    rows = await delivered(stack, 2)
    first, second = await generations_of(stack, user.chat_id)
    chosen = {"prompt": "a red bicycle", "aspect_ratio": "16:9", "output_format": "jpeg"}
    assert first["input"] == chosen and second["input"] == {
        "prompt": "a kite",
        "aspect_ratio": "1:1",
        "output_format": "png",
    }

    [listing] = await user.command("history")
    assert listing.text == "Your generations (page 1):"
    entries = user.buttons(listing)
    assert [data for _, data in entries] == [f"hr:{second['id'].hex}", f"hr:{first['id'].hex}"]
    assert all("google/nano-banana: done" in label for label, _ in entries), entries

    # Send again: the first result, from our copy, with its buttons.
    [again] = await user.press(entries[1][0], exact=True, message=listing)
    assert again.kind == "photo" and again.caption == "Done: google/nano-banana"
    assert fake.last_call("sendPhoto").files[0].data == PNG
    assert [label for label, _ in user.buttons(again)] == ["Repeat", "New", "Same settings, new prompt"]

    # Repeat (on the first result message): the same model and input, at once.
    origin = result_message(user, next(r for r in rows if r["generation_id"] == first["id"]))
    [status] = await user.press("Repeat", message=origin)
    assert status.text == "Queued: google/nano-banana"
    await delivered(stack, 3)
    third = (await generations_of(stack, user.chat_id))[2]
    assert third["model"] == first["model"] and third["input"] == first["input"]
    assert third["id"] != first["id"]

    # Same settings, new prompt: only the prompt is asked, then the settings keep the old choices.
    [ask] = await user.press("Same settings, new prompt", message=origin)
    assert ask.text == "Send prompt as text (up to 5000 characters)."
    [settings] = await user.say("a blue bicycle")
    assert "aspect_ratio: 16:9" in (settings.text or "") and "output_format: jpeg" in (settings.text or "")
    await confirm(user)
    await delivered(stack, 4)
    fourth = (await generations_of(stack, user.chat_id))[3]
    assert fourth["input"] == {**chosen, "prompt": "a blue bicycle"}

    # New: the main menu.
    [menu] = await user.press("New", message=origin)
    assert menu.text and menu.text.startswith("Hi!")
    assert [data for _, data in user.buttons(menu)] == [
        "mn:image",
        "mn:video",
        "mn:audio",
        "mn:history",
        "mn:help",
    ]

    # Paged: six generations are five on page 1 and one, the oldest, on page 2.
    for prompt in ("a boat", "a tree"):
        await user.command("imagine", prompt)
    await delivered(stack, 6)
    [page1] = await user.command("history")
    newest = await generations_of(stack, user.chat_id)
    assert [d for _, d in user.buttons(page1)] == [f"hr:{g['id'].hex}" for g in newest[:0:-1]] + ["hs:1"]
    [page2] = await user.press("More", message=page1)
    assert page2.text == "Your generations (page 2):"
    assert [d for _, d in user.buttons(page2)] == [f"hr:{first['id'].hex}", "hs:0"]
    assert await settled(stack) == {"done"}


# --- cancel ------------------------------------------------------------------------------------


async def test_cancel_mid_wizard_by_button_and_by_command_creates_nothing(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake)).stack
    user = TelegramUser(fake)
    await open_model(user, "Image", NANO)
    await user.say("a cat")
    [canceled] = await user.press("Cancel")
    assert canceled.text == "Canceled." and user.buttons(canceled)[0][1] == "mn:image"
    [nothing] = await user.command("cancel")
    assert nothing.text == "There is nothing to cancel."

    await open_model(user, "Image", NANO)  # cancelled at the first question, by command
    [canceled] = await user.command("cancel")
    assert canceled.text == "Canceled."
    # The wizard is over: text is no longer an answer (the next reply is /help's, and nothing else).
    before = len(user.bot_messages())
    fake.push_update(fake.make_text_message("a dog", user=user.user))
    [help_] = await user.command("help")  # one chat's updates are handled in order
    assert (help_.text or "").startswith("Tap Image") and len(user.bot_messages()) == before + 1
    await open_model(user, "Video", "Kling 2.6 text to video")
    await user.say("a fox")
    await user.press("Generate")
    [canceled] = await user.press("Cancel")  # on the confirmation screen
    assert canceled.text == "Canceled."
    assert await generations_of(stack, user.chat_id) == []
    assert await settled(stack) == {"done"}


async def test_cancel_mid_generation_marks_the_running_generation_canceled(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake, latency=60)).stack
    user = TelegramUser(fake)
    await open_model(user, "Image", NANO)
    await user.say("a slow cat")
    await confirm(user)
    [generation] = await generations_of(stack, user.chat_id)
    await stack.wait_state(str(generation["id"]), {"submitted", "running"})
    [stopped] = await user.command("cancel")
    assert stopped.text == "Stopped tracking google/nano-banana."
    [row] = await generations_of(stack, user.chat_id)
    assert row["state"] == "canceled"
    [delivery] = await delivered(stack)
    assert delivery["state"] == "delivered"
    assert result_message(user, delivery).text == "Canceled: google/nano-banana."
    [nothing] = await user.command("cancel")
    assert nothing.text == "There is nothing to cancel."


# --- expired buttons ---------------------------------------------------------------------------


async def test_an_expired_or_foreign_button_gets_a_polite_answer_and_a_fresh_menu(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake)).stack
    bob = TelegramUser(fake, FakeUser(id=30_001, first_name="Bob", username="bob_b"))
    await bob.command("imagine", "bob's cat")
    await delivered(stack, 1)
    [bobs] = await generations_of(stack, bob.chat_id)

    user = TelegramUser(fake)
    await user.command("start")
    [page] = await user.press("Image")
    version, index = next(d for _, d in user.buttons(page) if d.startswith("md:")).split(":")[1:]
    await user.press(NANO, exact=True)
    await user.press("Start")
    [settings] = await user.say("a cat")
    await user.press("Generate")
    confirmation = user.bot_messages()[-1]
    await user.press("Confirm", replies=2)
    await delivered(stack, 2)

    async def expired(data: str, message: ChatMessage, check: bool = True) -> None:
        update = fake.make_callback_query(
            user.chat_id, message.message_id, data, user=user.user, check_button=check
        )
        [reply] = await user.send_update(update)
        assert reply.text == EXPIRED, (data, reply.text)
        assert [d for _, d in user.buttons(reply)][:3] == ["mn:image", "mn:video", "mn:audio"]
        assert fake.callback_answers()[-1].text == EXPIRED

    def data_of(message: ChatMessage, label: str) -> str:
        return next(data for text, data in user.buttons(message) if text == label)

    # Buttons still on screen, of a wizard that has ended: Confirm again, Generate, a setting.
    await expired(data_of(confirmation, "Confirm"), confirmation)
    await expired(data_of(settings, "Generate"), settings)
    await expired(data_of(settings, "aspect_ratio: 1:1"), settings)
    # A canceled wizard's buttons; an older wizard's buttons once a newer one runs (which stays).
    await open_model(user, "Image", NANO)
    [canceled] = await user.say("a dog")
    await user.press("Cancel")
    await expired(data_of(canceled, "Generate"), canceled)
    await open_model(user, "Image", NANO)
    [older] = await user.say("an owl")
    await open_model(user, "Image", NANO)
    [newer] = await user.say("a fox")
    await expired(data_of(older, "Generate"), older)
    [summary] = await user.press("Generate", message=newer)
    assert "prompt: a fox" in (summary.text or ""), summary.text
    # Back from the confirmation: its Confirm is then an old button; the wizard goes on unharmed.
    [back] = await user.press("Back", message=summary)
    await expired(data_of(summary, "Confirm"), summary)
    await user.press("Generate", message=back)
    await user.press("Confirm", replies=2)
    await delivered(stack, 3)
    other = "ffff" if version != "ffff" else "0000"
    for data in (
        f"md:{other}:{index}",  # a model of another catalog
        f"ws:{other}:{index}",
        f"pg:{other}:image:0",
        f"md:{version}:9999",
        f"rp:{bobs['id'].hex}",  # another user's generation
        f"rn:{bobs['id'].hex}",
        f"hr:{bobs['id'].hex}",
        f"rp:{uuid.uuid4().hex}",
        "rp:not-hex",
        "hs:x",
        "wc:abcdef:0",
        "mn:nothing",
        "garbage",
        "x" * 64,
    ):
        await expired(data, page, check=False)
    # The second press of the first Confirm started nothing; the fox did start.
    assert [g["input"]["prompt"] for g in await generations_of(stack, user.chat_id)] == ["a cat", "a fox"]
    assert await settled(stack) == {"done"}
    assert not any(text_of(m).startswith("Sorry") for m in user.bot_messages())


# --- limits, the allowlist and the admins --------------------------------------------------------


async def test_a_user_with_a_generation_in_flight_over_the_limit_is_refused(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake, latency=60, TELEGRAM_MAX_ACTIVE_PER_USER="1")).stack
    user = TelegramUser(fake)
    await user.command("imagine", "a slow cat")
    await open_model(user, "Image", NANO)
    await user.say("another cat")
    await user.press("Generate")
    [refused] = await user.press("Confirm")
    assert refused.text == (
        "You already have 1 generations running (the limit is 1). Wait for one to finish."
    )
    [refused] = await user.command("imagine", "a third cat")
    assert refused.text and refused.text.startswith("You already have 1 generations running")
    assert len(await generations_of(stack, user.chat_id)) == 1


async def test_a_user_over_the_daily_limit_is_told_when_they_can_go_on(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake, TELEGRAM_DAILY_LIMIT="1")).stack
    before = dt.datetime.now(dt.UTC)
    user = TelegramUser(fake)
    await user.command("imagine", "a cat")
    [row] = await delivered(stack, 1)
    [refused] = await user.press("Repeat", message=result_message(user, row))
    [again] = await user.command("imagine", "another cat")
    resets = {
        (moment.date() + dt.timedelta(days=1)).strftime("%Y-%m-%d 00:00")
        for moment in (before, dt.datetime.now(dt.UTC))
    }
    expected = {f"You have used today's 1 generations. You can go on after {r} UTC." for r in resets}
    assert refused.text in expected and again.text in expected, (refused.text, expected)
    assert len(await generations_of(stack, user.chat_id)) == 1


async def test_only_allowed_users_by_id_or_username_may_use_the_bot(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake, TELEGRAM_ALLOWED_USERS="@Alice_Tester, 50001")).stack
    bob = TelegramUser(fake, FakeUser(id=30_001, first_name="Bob", username="bob_b"))
    for command, args in (("start", ""), ("imagine", "a cat"), ("stats", "")):
        [refused] = await bob.command(command, args)
        assert refused.text == "Sorry, this bot is private."
    [refused] = await bob.say("hello")
    assert refused.text == "Sorry, this bot is private."
    press = fake.make_callback_query(
        bob.chat_id, refused.message_id, "mn:image", user=bob.user, check_button=False
    )
    answers = len(fake.callback_answers())
    fake.push_update(press)
    await fake.wait_for(lambda: len(fake.callback_answers()) > answers, what="the refusal of a button")
    assert fake.callback_answers()[-1].text == "Sorry, this bot is private."
    assert len(bob.bot_messages()) == 4

    alice = TelegramUser(fake)  # allowed by @username (in another case)
    await alice.command("imagine", "a dog")
    await delivered(stack, 1)
    carol = TelegramUser(fake, FakeUser(id=50_001, first_name="Carol"))  # allowed by id
    [welcome] = await carol.command("start")
    assert welcome.text and welcome.text.startswith("Hi!")
    assert await generations_of(stack, bob.chat_id) == []
    assert len(await generations_of(stack, alice.chat_id)) == 1


async def test_admins_get_stats_and_a_users_generations_and_nobody_else_does(
    service: StartService, fake: FakeBotApi
) -> None:
    alice = TelegramUser(fake)
    stack = (await service(fake, TELEGRAM_ADMIN_IDS=str(alice.chat_id))).stack
    await alice.command("imagine", "a dog")
    await delivered(stack, 1)
    [stats] = await alice.command("stats")
    lines = (stats.text or "").splitlines()
    assert lines[0] == "Generations today: 1 (succeeded 1)" and lines[1] == "In 7 days: 1 (succeeded 1)"
    assert lines[2] == "By model (7 days): google/nano-banana 1" and lines[3] == "Active users (7 days): 1"
    assert (
        lines[4].startswith("KIE credits: ")
        and lines[4] != "KIE credits: ?"
        and lines[5].startswith("Inbox:")
    )
    [user_line] = await alice.command("user", str(alice.chat_id))
    assert "google/nano-banana: succeeded" in (user_line.text or "")
    [usage] = await alice.command("user", "somebody")
    assert usage.text == "Type /user <telegram user id>."

    bob = TelegramUser(fake, FakeUser(id=30_001, first_name="Bob"))
    fake.push_update(fake.make_command("stats", user=bob.user))
    fake.push_update(fake.make_command("user", str(alice.chat_id), user=bob.user))
    [help_] = await bob.command("help")  # answered after the two before it (one chat, in order)
    assert (help_.text or "").startswith("Tap Image") and len(bob.bot_messages()) == 1


# --- two languages -------------------------------------------------------------------------------


async def test_russian_for_a_russian_user_switchable_with_language_and_kept(
    service: StartService, fake: FakeBotApi
) -> None:
    stack = (await service(fake)).stack
    ivan = TelegramUser(fake, FakeUser(id=40_001, first_name="Ivan", language_code="ru"))
    [welcome] = await ivan.command("start")
    assert welcome.text and welcome.text.startswith("Привет!")
    assert [label for label, _ in ivan.buttons(welcome)][:3] == ["Картинка", "Видео", "Музыка"]
    [page] = await ivan.press("Картинка")
    assert (page.text or "").startswith("Картинки: выберите модель")
    [card] = await ivan.press(NANO, exact=True)
    assert "Нужно: prompt" in (card.text or "")
    [ask] = await ivan.press("Начать")
    assert ask.text == "Отправьте prompt текстом (до 5000 символов)."
    wrong, again = await ivan.say("x" * 5001, replies=2)
    assert wrong.text == "Здесь 5001 символов, а prompt — не больше 5000. Попробуйте короче."
    assert again.text == ask.text
    [settings] = await ivan.say("рыжий кот")
    assert "нажмите настройку" in (settings.text or "")
    [ask] = await ivan.press("aspect_ratio:")
    assert ask.text == "Выберите aspect_ratio:"
    assert "Пропустить" in [label for label, _ in ivan.buttons(ask)]
    await ivan.press("16:9", exact=True)
    [confirmation] = await ivan.press("Создать")
    assert (confirmation.text or "").startswith("Запускаю")
    status, started = await ivan.press("Подтвердить", replies=2)
    assert (
        status.text == "В очереди: google/nano-banana" and started.text == "Запущено. Пришлю результат сюда."
    )
    [row] = await delivered(stack, 1)
    edits = [str(c.params.get("text")) for c in fake.calls("editMessageText", ivan.chat_id) if c.ok]
    assert all(e.startswith(("Отправлено в KIE", "Работаю")) for e in edits), edits
    result = result_message(ivan, row)
    assert result.caption == "Готово: google/nano-banana"
    assert [label for label, _ in ivan.buttons(result)] == [
        "Повторить",
        "Новая",
        "Те же настройки, новый запрос",
    ]

    [switched] = await ivan.command("language")
    assert switched.text == "I will speak English." and ivan.buttons(switched)[0][0] == "Image"
    [welcome] = await ivan.command("start")  # kept across messages
    assert welcome.text and welcome.text.startswith("Hi!")
    await ivan.command("imagine", "a dog")
    rows = await delivered(stack, 2)
    assert result_message(ivan, rows[1]).caption == "Done: google/nano-banana"
    [switched] = await ivan.command("language")
    assert switched.text == "Буду говорить по-русски."
    [listing] = await ivan.command("history")
    assert listing.text == "Ваши генерации (страница 1):"
    assert all(label.endswith(": готово") for label, _ in ivan.buttons(listing))

    for code, greeting in (("uk", "Привет!"), ("kk", "Привет!"), ("en-US", "Hi!"), ("de", "Hi!")):
        other = TelegramUser(
            fake, FakeUser(id=40_100 + len(code) * 7 + ord(code[0]), first_name="X", language_code=code)
        )
        [welcome] = await other.command("start")
        assert welcome.text and welcome.text.startswith(greeting), code


async def test_done_before_any_photo_says_what_is_expected_and_stays_on_the_question(
    service: StartService, fake: FakeBotApi
) -> None:
    running = await service(fake)
    user = TelegramUser(fake)
    await open_model(user, "Image", "Nano Banana edit")
    await user.say(PROMPT)
    question = user.bot_messages()[-1]
    assert question.text == "Send up to 10 photos for image_urls, then tap Done (0 so far)."
    error, again = await user.press("Done", replies=2)
    assert "image_urls" in (error.text or "") and error.text != EXPIRED, error.text
    assert again.text == question.text and again.reply_markup == question.reply_markup
    [more] = await user.photo(RED)
    assert more.text == "Send up to 10 photos for image_urls, then tap Done (1 so far)."
    await user.press("Done")
    generation = await finish(user, running.stack)
    assert len(generation["input"]["image_urls"]) == 1


async def test_a_choice_button_of_an_earlier_question_does_not_answer_the_current_one(
    service: StartService, fake: FakeBotApi
) -> None:
    running = await service(fake)
    user = TelegramUser(fake)
    await open_model(user, "Video", "Kling 2.6 text to video")
    [settings] = await user.say(PROMPT)
    [aspect] = await user.press("aspect_ratio:", message=settings)
    await user.press("9:16", exact=True, message=aspect)
    [duration] = await user.press("duration:")  # the duration question, with choices 5 and 10
    # The old question's second button: expired (with a fresh menu), never an answer to duration.
    [reply] = await user.press("16:9", exact=True, message=aspect)
    assert reply.text == EXPIRED and reply.reply_markup, reply.payload  # with a fresh menu
    await user.press("10", exact=True, message=duration)
    generation = await finish(user, running.stack)
    assert generation["input"]["aspect_ratio"] == "9:16" and generation["input"]["duration"] == "10"
