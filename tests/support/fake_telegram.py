"""A fake Telegram Bot API server: a real aiohttp server on loopback that answers like Telegram.

Point a real client at it and it behaves, on the wire, like ``api.telegram.org``::

    async with FakeBotApi() as fake:
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))
        bot = Bot(fake.token, session=session)
        await bot.send_message(fake.user.id, "hi")
        assert [m.text for m in fake.chat_messages(fake.user.id)] == ["hi"]

Requests go to ``{base_url}/bot{token}/{method}`` and files to ``{base_url}/file/bot{token}/{path}``.
Bodies may be query strings, urlencoded, JSON or multipart; files may be a URL, a file_id, an
uploaded part, or ``attach://name`` pointing at an uploaded part (also inside ``media`` JSON).

What is faithful, because clients depend on it (checked against tdlib/telegram-bot-api):

* the envelope ``{"ok": false, "error_code": N, "description": ...}`` with
  ``parameters.retry_after`` on 429, the exact descriptions of the errors below, 401 for a
  well-formed token that is not configured, 404 "Not Found: method not found";
* getUpdates: updates below ``offset`` are confirmed and forgotten, a negative offset keeps
  only the last ``-offset``; ``limit`` 1..100; ``allowed_updates`` is remembered across calls and
  filters updates as they are created (as Telegram does), with Telegram's default of everything
  but chat_member, message_reaction and message_reaction_count; a long poll waiting when another
  long poll arrives is ended with 409 "terminated by other getUpdates request"; setWebhook ends it
  with 409 "terminated by setWebhook request"; getUpdates while a webhook is set is a 409;
* webhooks: one POST per update, in order, with ``X-Telegram-Bot-Api-Secret-Token``; a non-2xx
  answer or a connection error is retried (first at once, then with doubling backoff, honouring
  ``Retry-After``), each attempt recorded, ``last_error_date``/``last_error_message`` set the way
  Telegram words them; a 2xx answer carrying a method (JSON or multipart, as aiogram's
  ``SimpleRequestHandler`` sends) is executed like Telegram's "webhook reply";
* edits that change nothing fail with 400 "message is not modified" by themselves;
* ``parse_mode=HTML`` is parsed into plain text plus entities, and bad markup fails like Telegram.

What it does not do: enforce Telegram's rate limits (inject 429s instead), re-encode media, parse
Markdown/MarkdownV2 (text is kept as sent), detect url/mention entities by itself, or download
media URLs (a URL's content is a placeholder unless :meth:`FakeBotApi.register_url` set it).
Webhook URLs must be on loopback, since tests may only talk to this machine.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ipaddress
import itertools
import json
import mimetypes
import re
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, ClassVar, Literal, cast

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy
from yarl import URL

# A token the project's own config accepts (digits, colon, a secret of 20+ characters).
DEFAULT_TOKEN = "123456789:AAF-fake-telegram-secret-for-tests"

# Exact descriptions, as tdlib/telegram-bot-api (Client.cpp, ClientManager.cpp) words them.
UNAUTHORIZED = "Unauthorized"
INVALID_TOKEN = "Unauthorized: invalid token specified"
METHOD_NOT_FOUND = "Not Found: method not found"
NOT_FOUND = "Not Found"
CONFLICT_OTHER_GET_UPDATES = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
CONFLICT_SET_WEBHOOK = "Conflict: terminated by setWebhook request"
CONFLICT_WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
# The server's own text ends "...of the message" (Client.cpp, since its first commit), which is
# what clients see; matching on the "message is not modified" prefix is the robust check.
MESSAGE_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
MESSAGE_TO_EDIT_NOT_FOUND = "Bad Request: message to edit not found"
MESSAGE_TO_DELETE_NOT_FOUND = "Bad Request: message to delete not found"
MESSAGE_TEXT_EMPTY = "Bad Request: message text is empty"
NO_TEXT_TO_EDIT = "Bad Request: there is no text in the message to edit"
NO_MEDIA_TO_EDIT = "Bad Request: there is no media in the message to edit"
REPLY_NOT_FOUND = "Bad Request: message to be replied not found"
CHAT_NOT_FOUND = "Bad Request: chat not found"
CHAT_ID_EMPTY = "Bad Request: chat_id is empty"
WRONG_FILE_ID = "Bad Request: wrong file identifier/HTTP URL specified"
INVALID_FILE_ID = "Bad Request: invalid file_id"
FILE_TOO_BIG = "Bad Request: file is too big"
FILE_EMPTY = "Bad Request: file must be non-empty"
URL_CONTENT_FAILED = "Bad Request: failed to get HTTP URL content"
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
ALBUM_MEDIA_MIX = "Bad Request: can't use the media of the specified type in the album"
BOT_BLOCKED = "Forbidden: bot was blocked by the user"
WEBHOOK_BAD_URL = "Bad Request: invalid webhook URL specified"
SECRET_TOO_LONG = "Bad Request: secret token is too long"
SECRET_BAD_CHARS = "Bad Request: secret token contains unallowed characters"
INTERNAL_SERVER_ERROR = "Internal Server Error"

# Telegram's getUpdates bound is 50 s; downloads through the Bot API stop at 20 MiB.
TELEGRAM_MAX_POLL_TIMEOUT = 50
MAX_DOWNLOAD_SIZE = 20 << 20
MAX_UPLOAD_SIZE = 50 << 20

UPDATE_TYPES = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
DEFAULT_ALLOWED_UPDATES = frozenset(UPDATE_TYPES) - {
    "chat_member",
    "message_reaction",
    "message_reaction_count",
}

CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

# Fields whose form value is JSON text, and fields Telegram reads as integers or booleans: a
# urlencoded or multipart body carries every value as text, a JSON body carries them natively.
_JSON_FIELDS = frozenset(
    {
        "reply_markup",
        "media",
        "entities",
        "caption_entities",
        "allowed_updates",
        "commands",
        "scope",
        "link_preview_options",
        "reply_parameters",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "max_connections",
        "reply_to_message_id",
        "message_thread_id",
        "duration",
        "width",
        "height",
        "cache_time",
    }
)
_BOOL_FIELDS = frozenset(
    {
        "disable_notification",
        "protect_content",
        "drop_pending_updates",
        "show_alert",
        "has_spoiler",
        "supports_streaming",
        "disable_web_page_preview",
        "allow_sending_without_reply",
        "show_caption_above_media",
        "disable_content_type_detection",
    }
)
_TOKEN_RE = re.compile(r"^(\d+):([A-Za-z0-9_-]+)$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]*$")

MediaKind = Literal["photo", "video", "audio", "document"]
_MEDIA_KINDS: tuple[MediaKind, ...] = ("photo", "video", "audio", "document")
_FILE_DIRS: dict[str, tuple[str, str]] = {
    "photo": ("photos", ".jpg"),
    "video": ("videos", ".mp4"),
    "audio": ("music", ".mp3"),
    "document": ("documents", ""),
}
_DEFAULT_MIME: dict[str, str] = {"photo": "image/jpeg", "video": "video/mp4", "audio": "audio/mpeg"}
# Telegram keeps a photo in several sizes, the largest no bigger than this on its long side.
_PHOTO_THUMB_SIDES = (90, 320, 800)
_PHOTO_MAX_SIDE = 1280
# What a message shows, compared as a whole to tell a real edit from a "not modified" one.
_SHOWN_KEYS: tuple[str, ...] = (
    "text",
    "entities",
    "caption",
    "caption_entities",
    "reply_markup",
    "has_media_spoiler",
    *_MEDIA_KINDS,
)


# --------------------------------------------------------------------------------------------
# Records the tests read
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeUser:
    """A Telegram user who writes to the bot; its private chat has the same id."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"

    def to_dict(self) -> dict[str, Any]:
        """The Bot API ``User`` object."""
        out: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        if self.language_code:
            out["language_code"] = self.language_code
        return out

    def private_chat(self) -> dict[str, Any]:
        """The Bot API ``Chat`` object of this user's private chat with the bot."""
        out: dict[str, Any] = {"id": self.id, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.username:
            out["username"] = self.username
        out["type"] = "private"
        return out


@dataclass(frozen=True)
class UploadedPart:
    """One file part of a multipart request, as received."""

    name: str
    filename: str | None
    content_type: str
    size: int
    sha256: str
    data: bytes = field(repr=False)


@dataclass
class RecordedCall:
    """One request to the Bot API, filled in as it is answered.

    ``fields`` are the text fields as sent; ``params`` the same with JSON fields decoded and
    integer/boolean fields converted, the way Telegram reads them. ``path`` carries the bot id
    but never the token's secret. ``at`` and ``finished_at`` are ``time.monotonic()`` values.
    """

    seq: int
    method: str
    path: str
    bot_id: int
    http_method: str
    content_type: str
    fields: dict[str, str]
    params: dict[str, Any]
    files: tuple[UploadedPart, ...]
    at: float
    via: Literal["http", "webhook_reply"] = "http"
    status: int | None = None
    ok: bool | None = None
    description: str | None = None
    result: Any = None
    dropped: bool = False
    fault: Fault | None = None
    finished_at: float | None = None

    @property
    def chat_id(self) -> int | str | None:
        """The ``chat_id`` parameter, an int when it was numeric."""
        value = self.params.get("chat_id")
        return value if isinstance(value, int | str) else None

    @property
    def performed(self) -> bool:
        """Whether the fake carried the call out (true also for accept-then-drop)."""
        return self.ok is True

    def file(self, name: str) -> UploadedPart:
        """The uploaded part named ``name`` (the multipart field name, not the filename)."""
        for part in self.files:
            if part.name == name:
                return part
        raise KeyError(name)


@dataclass(frozen=True)
class StoredFile:
    """A file the fake knows: uploaded by the bot, fetched "from" a URL, or added by a test."""

    file_id: str
    file_unique_id: str
    file_path: str
    kind: str
    data: bytes = field(repr=False)
    mime_type: str | None = None
    file_name: str | None = None
    source: Literal["upload", "url", "file_id", "test"] = "test"
    source_url: str | None = None
    width: int | None = None
    height: int | None = None
    duration: int | None = None

    @property
    def size(self) -> int:
        """Its size in bytes."""
        return len(self.data)

    @property
    def sha256(self) -> str:
        """Hex sha256 of its bytes."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ChatMessage:
    """A message as it currently is in a chat (a snapshot; edits make new snapshots)."""

    chat_id: int
    message_id: int
    from_bot: bool
    payload: dict[str, Any]
    edits: int

    @property
    def text(self) -> str | None:
        """Its text (without HTML markup), or None for a media message."""
        value = self.payload.get("text")
        return value if isinstance(value, str) else None

    @property
    def caption(self) -> str | None:
        """Its media caption, if any."""
        value = self.payload.get("caption")
        return value if isinstance(value, str) else None

    @property
    def kind(self) -> str:
        """``text``, ``photo``, ``video``, ``audio``, ``document`` or ``other``."""
        if "text" in self.payload:
            return "text"
        for kind in _MEDIA_KINDS:
            if kind in self.payload:
                return kind
        return "other"

    @property
    def file_id(self) -> str | None:
        """The file_id of its media (the largest size of a photo)."""
        media = self.payload.get(self.kind)
        if isinstance(media, list) and media:
            return cast(str, media[-1]["file_id"])
        if isinstance(media, dict):
            return cast(str, media["file_id"])
        return None

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        """Its inline keyboard, if any."""
        value = self.payload.get("reply_markup")
        return value if isinstance(value, dict) else None

    @property
    def media_group_id(self) -> str | None:
        """The album it belongs to, if any."""
        value = self.payload.get("media_group_id")
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class WebhookDelivery:
    """One attempt to POST an update to the webhook."""

    update_id: int
    attempt: int
    url: str
    secret_token: str | None
    status: int | None
    error: str | None
    at: float

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status <= 299


@dataclass(frozen=True)
class FileDownload:
    """One GET of ``/file/bot<token>/<path>``."""

    bot_id: int
    file_path: str
    status: int
    at: float


@dataclass
class Fault:
    """An injected misbehaviour; see the ``fail_*``, ``accept_then_drop`` and ``delay`` methods.

    ``times=None`` means every matching request until :meth:`FakeBotApi.clear_faults`.
    """

    kind: Literal["error", "drop", "delay"]
    method: str | None = None
    chat_id: int | str | None = None
    bot_id: int | None = None
    times: int | None = 1
    status: int = 0
    description: str = ""
    parameters: dict[str, Any] | None = None
    raw_body: str | None = None
    seconds: float = 0.0
    after_perform: bool = False
    hits: int = 0

    @property
    def exhausted(self) -> bool:
        """Whether it has fired as many times as it was told to."""
        return self.times is not None and self.hits >= self.times

    def matches(self, method: str, chat_id: int | str | None, bot_id: int) -> bool:
        """Whether it applies to this request."""
        if self.exhausted:
            return False
        if self.method is not None and self.method.lower() != method.lower():
            return False
        if self.chat_id is not None and self.chat_id != chat_id:
            return False
        return self.bot_id is None or self.bot_id == bot_id


@dataclass(frozen=True)
class ReceivedCallbackAnswer:
    """An answerCallbackQuery the bot made."""

    callback_query_id: str
    text: str | None
    show_alert: bool
    url: str | None


# --------------------------------------------------------------------------------------------
# Internals
# --------------------------------------------------------------------------------------------


class _ApiError(Exception):
    """An error answer, raised from deep inside a method handler."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


@dataclass
class _Request:
    """A parsed request, handed to a method handler."""

    params: dict[str, Any]
    files: dict[str, UploadedPart]
    call: RecordedCall
    description: str | None = None  # Telegram adds one to some answers ("Webhook was set")


@dataclass
class _StoredMessage:
    payload: dict[str, Any]
    from_bot: bool
    deleted: bool = False
    edits: int = 0


@dataclass
class _Chat:
    chat: dict[str, Any]
    messages: dict[int, _StoredMessage] = field(default_factory=dict)
    next_message_id: int = 1


@dataclass
class _Webhook:
    url: str
    secret_token: str | None
    max_connections: int
    task: asyncio.Task[None] | None = None


class _BotState:
    """Everything one bot token sees: its queue, webhook, chats and files."""

    def __init__(self, token: str, bot_id: int, username: str, first_name: str, first_update_id: int) -> None:
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.first_name = first_name
        self.pending: list[dict[str, Any]] = []
        self.next_update_id = first_update_id
        self.allowed_updates: frozenset[str] = DEFAULT_ALLOWED_UPDATES
        self.long_poll: asyncio.Future[str | None] | None = None
        self.pending_event = asyncio.Event()
        self.webhook: _Webhook | None = None
        self.last_error_date: int | None = None
        self.last_error_message: str | None = None
        self.deliveries: list[WebhookDelivery] = []
        self.chats: dict[int, _Chat] = {}
        self.usernames: dict[str, int] = {}
        self.users: dict[int, FakeUser] = {}
        self.blocked: set[int] = set()
        self.files: dict[str, StoredFile] = {}
        self.files_by_path: dict[str, StoredFile] = {}
        self.photo_groups: dict[str, tuple[str, ...]] = {}
        self.file_counter = itertools.count(1)
        self.media_group_counter = itertools.count(1)
        self.callback_queries: dict[str, bool] = {}  # id -> answered
        self.callback_answers: list[ReceivedCallbackAnswer] = []
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def bot_user(self) -> dict[str, Any]:
        """The bot as a message's ``from``: getMe's capability flags appear only in getMe."""
        return {"id": self.bot_id, "is_bot": True, "first_name": self.first_name, "username": self.username}

    def me(self) -> dict[str, Any]:
        return {
            **self.bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def wake_long_poll(self, outcome: str | None) -> None:
        """Resolve the waiting long poll: None wakes it to look again, a string fails it with 409."""
        if self.long_poll is not None and not self.long_poll.done():
            self.long_poll.set_result(outcome)


def _utf16_len(text: str) -> int:
    # Entity offsets and lengths are in UTF-16 code units, not code points.
    return len(text.encode("utf-16-le")) // 2


def _decode_params(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Read raw fields the way Telegram does: JSON fields parsed, ints and bools converted."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            if key in _JSON_FIELDS:
                # Bad JSON stays text: the handler then reports it the way Telegram does.
                with contextlib.suppress(ValueError):
                    value = json.loads(value)
            elif key in _INT_FIELDS and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
            elif key in _BOOL_FIELDS:
                value = value.strip().lower() in ("true", "1")
        out[key] = value
    return out


def _copy(payload: dict[str, Any]) -> dict[str, Any]:
    """A deep copy, as a client would get it: what tests hold must not alias the fake's state."""
    copied: dict[str, Any] = json.loads(json.dumps(payload))
    return copied


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, GIF or JPEG, read from its header; None when unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] == b"\xff\xd8":
        pos = 2
        while pos + 9 <= len(data):
            if data[pos] != 0xFF:
                return None
            marker = data[pos + 1]
            (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
            # SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
                return int(width), int(height)
            pos += 2 + length
    return None


def _fit(width: int, height: int, side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


class _HtmlEntities(HTMLParser):
    """Telegram's HTML parse mode: supported tags become entities, anything else is an error."""

    _SIMPLE: ClassVar[dict[str, str]] = {
        "b": "bold",
        "strong": "bold",
        "i": "italic",
        "em": "italic",
        "u": "underline",
        "ins": "underline",
        "s": "strikethrough",
        "strike": "strikethrough",
        "del": "strikethrough",
        "tg-spoiler": "spoiler",
        "code": "code",
        "pre": "pre",
    }

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", source)]
        self._parts: list[str] = []
        self._offset = 0
        self._stack: list[tuple[str, int, dict[str, Any] | None]] = []
        self.entities: list[dict[str, Any]] = []

    def _byte_offset(self) -> int:
        line, col = self.getpos()
        index = self._line_starts[line - 1] + col
        return len(self._source[:index].encode())

    def _fail(self, message: str) -> None:
        raise _ApiError(400, f"Bad Request: can't parse entities: {message}")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        entity: dict[str, Any] | None
        if tag in self._SIMPLE:
            entity = {"type": self._SIMPLE[tag]}
            if tag == "code" and self._stack and self._stack[-1][0] == "pre":
                css_class = attributes.get("class") or ""
                pre = self._stack[-1][2]
                if css_class.startswith("language-") and len(css_class) > 9 and pre is not None:
                    pre["language"] = css_class.removeprefix("language-")
                    entity = None  # Telegram folds <pre><code class="language-x"> into one pre entity
        elif tag == "span" and attributes.get("class") == "tg-spoiler":
            entity = {"type": "spoiler"}
        elif tag == "a":
            href = attributes.get("href")
            entity = {"type": "text_link", "url": href} if href else None
        elif tag == "blockquote":
            entity = {"type": "expandable_blockquote" if "expandable" in attributes else "blockquote"}
        else:
            self._fail(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')
            return
        self._stack.append((tag, self._offset, entity))

    def handle_endtag(self, tag: str) -> None:
        if not self._stack:
            self._fail(f"Unexpected end tag at byte offset {self._byte_offset()}")
        open_tag, start, entity = self._stack.pop()
        if open_tag != tag:
            self._fail(
                f'Unmatched end tag at byte offset {self._byte_offset()}, expected "</{open_tag}>", '
                f'found "</{tag}>"'
            )
        length = self._offset - start
        if entity is not None and length > 0:
            self.entities.append({**entity, "offset": start, "length": length})

    def handle_data(self, data: str) -> None:
        self._parts.append(data)
        self._offset += _utf16_len(data)

    def result(self) -> tuple[str, list[dict[str, Any]]]:
        self.close()
        if self._stack:
            self._fail(f'Can\'t find end tag corresponding to start tag "{self._stack[-1][0]}"')
        ordered = sorted(self.entities, key=lambda e: (e["offset"], -e["length"]))
        return "".join(self._parts), ordered


def _strip_formatted(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim leading and trailing whitespace like Telegram, keeping entities on the same characters."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    total = _utf16_len(stripped)
    out: list[dict[str, Any]] = []
    for entity in entities:
        start = max(0, entity["offset"] - lead)
        end = min(total, entity["offset"] + entity["length"] - lead)
        if end > start:
            out.append({**entity, "offset": start, "length": end - start})
    return stripped, out


def _formatted(text: str, parse_mode: Any, entities: Any) -> tuple[str, list[dict[str, Any]]]:
    """Text and entities as Telegram stores them for this text, parse_mode and explicit entities."""
    if isinstance(entities, list) and entities:
        return _strip_formatted(text, [dict(e) for e in entities if isinstance(e, dict)])
    if isinstance(parse_mode, str) and parse_mode.lower() == "html":
        parser = _HtmlEntities(text)
        parser.feed(text)
        return _strip_formatted(*parser.result())
    return _strip_formatted(text, [])


def _is_url(value: str) -> bool:
    return value.startswith(("http://", "https://"))


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _inline_markup(value: Any) -> dict[str, Any] | None:
    # Message.reply_markup only ever shows an inline keyboard; reply keyboards are not echoed.
    if isinstance(value, dict) and isinstance(value.get("inline_keyboard"), list):
        return value
    return None


def _json_response(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda v: json.dumps(v, ensure_ascii=False))


def _error_payload(status: int, description: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        payload["parameters"] = parameters
    return payload


async def _read_multipart(reader: aiohttp.MultipartReader) -> tuple[dict[str, str], list[UploadedPart]]:
    fields: dict[str, str] = {}
    files: list[UploadedPart] = []
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, aiohttp.BodyPartReader):
            continue  # nested multipart: Telegram has no use for it either
        name = part.name or ""
        if part.filename is not None:
            data = bytes(await part.read(decode=True))
            files.append(
                UploadedPart(
                    name=name,
                    filename=part.filename,
                    content_type=part.headers.get(aiohttp.hdrs.CONTENT_TYPE, "application/octet-stream"),
                    size=len(data),
                    sha256=hashlib.sha256(data).hexdigest(),
                    data=data,
                )
            )
        else:
            fields[name] = await part.text()
    return fields, files


Handler = Callable[[_BotState, _Request], Awaitable[Any]]


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeBotApi:
    """A fake Bot API server for one or more bot tokens; use ``async with`` or start()/stop().

    Time-related knobs are small by default so tests stay fast: ``long_poll_cap`` bounds how long a
    getUpdates long poll waits whatever its ``timeout`` (Telegram's own bound is 50 s), and the
    webhook retry backoff starts at ``webhook_retry_base`` seconds, doubles up to
    ``webhook_retry_cap``, and gives an update up after ``webhook_max_attempts`` attempts
    (Telegram keeps trying for hours).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        extra_tokens: Iterable[str] = (),
        bot_username: str = "fake_test_bot",
        bot_first_name: str = "Fake Test Bot",
        host: str = "127.0.0.1",
        long_poll_cap: float = 10.0,
        webhook_max_attempts: int = 5,
        webhook_retry_base: float = 0.02,
        webhook_retry_cap: float = 0.5,
        webhook_timeout: float = 5.0,
        strict_urls: bool = False,
        first_update_id: int = 100_000_001,
    ) -> None:
        if not _is_loopback(host):
            raise ValueError("the fake Bot API listens on loopback only")
        self.token = token
        self.host = host
        self.long_poll_cap = long_poll_cap
        self.webhook_max_attempts = webhook_max_attempts
        self.webhook_retry_base = webhook_retry_base
        self.webhook_retry_cap = webhook_retry_cap
        self.webhook_timeout = webhook_timeout
        self.strict_urls = strict_urls
        self._first_update_id = first_update_id
        self._bots: dict[str, _BotState] = {}
        self._calls: list[RecordedCall] = []
        self._downloads: list[FileDownload] = []
        self._faults: list[Fault] = []
        self._url_contents: dict[str, tuple[bytes, str | None]] = {}
        self._seq = itertools.count(1)
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._activity = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._port: int | None = None
        self._stopping = False
        self.user = FakeUser(id=10_001, first_name="Alice", last_name="Tester", username="alice_tester")
        self.add_bot(token, username=bot_username, first_name=bot_first_name)
        for extra in extra_tokens:
            self.add_bot(extra)
        # Every bot knows the default user, so its private chat carries a real name from the start.
        for known in self._bots:
            self.add_user(self.user, token=known)
        self._handlers: dict[str, tuple[str, Handler]] = {
            name.lower(): (name, handler)
            for name, handler in (
                ("getMe", self._m_get_me),
                ("getUpdates", self._m_get_updates),
                ("setWebhook", self._m_set_webhook),
                ("deleteWebhook", self._m_delete_webhook),
                ("getWebhookInfo", self._m_get_webhook_info),
                ("sendMessage", self._m_send_message),
                ("editMessageText", self._m_edit_message_text),
                ("editMessageCaption", self._m_edit_message_caption),
                ("editMessageMedia", self._m_edit_message_media),
                ("editMessageReplyMarkup", self._m_edit_message_reply_markup),
                ("deleteMessage", self._m_delete_message),
                ("sendPhoto", self._m_send_photo),
                ("sendVideo", self._m_send_video),
                ("sendAudio", self._m_send_audio),
                ("sendDocument", self._m_send_document),
                ("sendMediaGroup", self._m_send_media_group),
                ("answerCallbackQuery", self._m_answer_callback_query),
                ("sendChatAction", self._m_send_chat_action),
                ("setMyCommands", self._m_set_my_commands),
                ("getMyCommands", self._m_get_my_commands),
                ("deleteMyCommands", self._m_delete_my_commands),
                ("getFile", self._m_get_file),
            )
        }

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free loopback port."""
        # Big enough for Telegram's 50 MB uploads when a body is read whole (urlencoded/JSON).
        app = web.Application(client_max_size=MAX_UPLOAD_SIZE + (1 << 20))
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        # No access log: request lines contain the bot token, which must never reach a log.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        self._client = aiohttp.ClientSession()
        self._stopping = False

    async def stop(self) -> None:
        """Stop webhook deliveries, end waiting long polls (empty result) and close the server."""
        self._stopping = True
        for state in self._bots.values():
            state.wake_long_poll(None)
            if state.webhook is not None and state.webhook.task is not None:
                state.webhook.task.cancel()
                await asyncio.gather(state.webhook.task, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotApi:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, for ``TelegramAPIServer.from_base``."""
        if self._port is None:
            raise RuntimeError("FakeBotApi is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    # ---- bots, users, chats --------------------------------------------------------------

    def add_bot(self, token: str, *, username: str | None = None, first_name: str | None = None) -> int:
        """Accept another token (``<digits>:<secret>``); returns its bot id."""
        match = _TOKEN_RE.match(token)
        if match is None:
            raise ValueError("a bot token looks like 123456:secret")
        bot_id = int(match.group(1))
        self._bots[token] = _BotState(
            token,
            bot_id,
            username or f"fake_{bot_id}_bot",
            first_name or f"Fake Bot {bot_id}",
            self._first_update_id,
        )
        return bot_id

    def _state(self, token: str | None) -> _BotState:
        return self._bots[token or self.token]

    def add_user(self, user: FakeUser, *, token: str | None = None) -> FakeUser:
        """Make a user known, so its private chat shows its name."""
        state = self._state(token)
        state.users[user.id] = user
        chat = self._chat(state, user.id)
        chat.chat = user.private_chat()
        if user.username:
            state.usernames[user.username.lower()] = user.id
        return user

    def add_chat(
        self,
        chat_id: int,
        *,
        type: Literal["group", "supergroup", "channel"] = "supergroup",
        title: str = "Test Chat",
        username: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Make a group, supergroup or channel known (by username too, for ``@name`` chat ids)."""
        state = self._state(token)
        chat: dict[str, Any] = {"id": chat_id, "title": title}
        if username:
            chat["username"] = username
            state.usernames[username.lower()] = chat_id
        chat["type"] = type
        self._chat(state, chat_id).chat = chat
        return chat

    def block_chat(self, chat_id: int, *, token: str | None = None) -> None:
        """The user blocked the bot: sends to this chat now fail with 403."""
        self._state(token).blocked.add(chat_id)

    def unblock_chat(self, chat_id: int, *, token: str | None = None) -> None:
        """Undo :meth:`block_chat`."""
        self._state(token).blocked.discard(chat_id)

    def _chat(self, state: _BotState, chat_id: int) -> _Chat:
        chat = state.chats.get(chat_id)
        if chat is None:
            user = state.users.get(chat_id)
            if user is not None:
                info = user.private_chat()
            elif chat_id > 0:
                info = {"id": chat_id, "first_name": f"User {chat_id}", "type": "private"}
            elif str(chat_id).startswith("-100"):
                info = {"id": chat_id, "title": f"Supergroup {chat_id}", "type": "supergroup"}
            else:
                info = {"id": chat_id, "title": f"Group {chat_id}", "type": "group"}
            chat = state.chats[chat_id] = _Chat(chat=info)
        return chat

    # ---- what the tests read -------------------------------------------------------------

    def calls(
        self,
        method: str | None = None,
        chat_id: int | str | None = None,
        *,
        ok: bool | None = None,
        token: str | None = None,
    ) -> list[RecordedCall]:
        """Recorded calls, oldest first, optionally by method (any case), chat_id and outcome."""
        bot_id = self._state(token).bot_id if token else None
        return [
            call
            for call in self._calls
            if (method is None or call.method.lower() == method.lower())
            and (chat_id is None or call.chat_id == chat_id)
            and (ok is None or call.ok is ok)
            and (bot_id is None or call.bot_id == bot_id)
        ]

    def last_call(self, method: str | None = None, chat_id: int | str | None = None) -> RecordedCall:
        """The most recent matching call; AssertionError when there is none."""
        found = self.calls(method, chat_id)
        if not found:
            raise AssertionError(f"no recorded call matches method={method!r} chat_id={chat_id!r}")
        return found[-1]

    def chat_messages(
        self, chat_id: int, *, include_incoming: bool = False, token: str | None = None
    ) -> list[ChatMessage]:
        """Messages now in the chat, in order, reflecting edits and deletions.

        By default only the bot's own messages; ``include_incoming`` adds the users' messages.
        """
        state = self._state(token)
        chat = state.chats.get(chat_id)
        if chat is None:
            return []
        return [
            ChatMessage(chat_id, message_id, stored.from_bot, _copy(stored.payload), stored.edits)
            for message_id, stored in chat.messages.items()
            if not stored.deleted and (stored.from_bot or include_incoming)
        ]

    def message(self, chat_id: int, message_id: int, *, token: str | None = None) -> ChatMessage:
        """One message as it is now (KeyError when it never existed or was deleted)."""
        for item in self.chat_messages(chat_id, include_incoming=True, token=token):
            if item.message_id == message_id:
                return item
        raise KeyError((chat_id, message_id))

    def send_times(self, chat_id: int, *, token: str | None = None) -> list[float]:
        """``time.monotonic()`` of each successful message-producing call to the chat, for pacing checks."""
        producing = {"sendmessage", "sendphoto", "sendvideo", "sendaudio", "senddocument", "sendmediagroup"}
        return [
            call.at
            for call in self.calls(chat_id=chat_id, ok=True, token=token)
            if call.method.lower() in producing
        ]

    def deliveries(self, update_id: int | None = None, *, token: str | None = None) -> list[WebhookDelivery]:
        """Webhook delivery attempts, oldest first."""
        return [d for d in self._state(token).deliveries if update_id is None or d.update_id == update_id]

    def downloads(self) -> list[FileDownload]:
        """File downloads served, oldest first."""
        return list(self._downloads)

    def pending_updates(self, *, token: str | None = None) -> list[dict[str, Any]]:
        """Updates not yet confirmed (getUpdates) or delivered (webhook)."""
        return [dict(u) for u in self._state(token).pending]

    def webhook_url(self, *, token: str | None = None) -> str | None:
        """The webhook now set, if any."""
        hook = self._state(token).webhook
        return hook.url if hook else None

    def callback_answers(self, *, token: str | None = None) -> list[ReceivedCallbackAnswer]:
        """answerCallbackQuery calls that succeeded."""
        return list(self._state(token).callback_answers)

    def my_commands(
        self, *, scope: dict[str, Any] | None = None, language_code: str = "", token: str | None = None
    ) -> list[dict[str, Any]]:
        """Commands set with setMyCommands for that scope and language."""
        key = (json.dumps(scope or {"type": "default"}, sort_keys=True), language_code)
        return list(self._state(token).commands.get(key, []))

    def file(self, file_id: str, *, token: str | None = None) -> StoredFile:
        """A known file by file_id."""
        return self._state(token).files[file_id]

    async def wait_for(
        self, predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until ``predicate()`` holds, re-checking after every call, delivery or update."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            event = self._activity
            if predicate():
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{what} did not happen within {timeout} s")
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                continue

    async def wait_for_call(
        self, method: str, *, chat_id: int | str | None = None, count: int = 1, timeout: float = 5.0
    ) -> RecordedCall:
        """Wait until ``count`` finished calls of ``method`` were recorded; returns the last."""

        def ready() -> bool:
            done = [c for c in self.calls(method, chat_id) if c.finished_at is not None]
            return len(done) >= count

        await self.wait_for(ready, timeout=timeout, what=f"{count} x {method}")
        return [c for c in self.calls(method, chat_id) if c.finished_at is not None][count - 1]

    async def wait_for_delivery(
        self, update_id: int, *, ok: bool = True, timeout: float = 5.0, token: str | None = None
    ) -> WebhookDelivery:
        """Wait until a delivery attempt of the update (a successful one unless ``ok=False``)."""

        def found() -> WebhookDelivery | None:
            for item in self.deliveries(update_id, token=token):
                if item.ok or not ok:
                    return item
            return None

        await self.wait_for(lambda: found() is not None, timeout=timeout, what=f"delivery of {update_id}")
        result = found()
        assert result is not None
        return result

    def _pulse(self) -> None:
        self._activity.set()
        self._activity = asyncio.Event()

    # ---- files ---------------------------------------------------------------------------

    def add_file(
        self,
        data: bytes,
        *,
        kind: str = "document",
        file_name: str | None = None,
        mime_type: str | None = None,
        token: str | None = None,
    ) -> str:
        """Register bytes as a Telegram file; returns a file_id usable with getFile and sends."""
        return self._store_file(
            self._state(token), data, kind=kind, file_name=file_name, mime_type=mime_type, source="test"
        ).file_id

    def register_url(self, url: str, data: bytes, *, mime_type: str | None = None) -> None:
        """What the fake "downloads" when a bot sends this URL as media."""
        self._url_contents[url] = (data, mime_type)

    def _store_file(
        self,
        state: _BotState,
        data: bytes,
        *,
        kind: str,
        file_name: str | None = None,
        mime_type: str | None = None,
        source: Literal["upload", "url", "file_id", "test"],
        source_url: str | None = None,
        width: int | None = None,
        height: int | None = None,
        duration: int | None = None,
    ) -> StoredFile:
        number = next(state.file_counter)
        # Shaped like real ids (base64url, no padding), unique per bot, stable across runs.
        raw = struct.pack(">QQ", state.bot_id, number) + kind.encode()
        file_id = "AgAC" + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        unique = "AQAD" + base64.urlsafe_b64encode(struct.pack(">Q", number)).decode().rstrip("=")
        directory, extension = _FILE_DIRS.get(kind, ("documents", ""))
        if kind == "document" and file_name and "." in file_name:
            extension = "." + file_name.rsplit(".", 1)[1]
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=unique,
            file_path=f"{directory}/file_{number}{extension}",
            kind=kind,
            data=data,
            mime_type=mime_type,
            file_name=file_name,
            source=source,
            source_url=source_url,
            width=width,
            height=height,
            duration=duration,
        )
        state.files[file_id] = stored
        state.files_by_path[stored.file_path] = stored
        return stored

    def _store_photo(
        self, state: _BotState, data: bytes, *, source: Any, source_url: str | None
    ) -> list[str]:
        width, height = _image_size(data) or (1280, 720)
        largest = _fit(width, height, _PHOTO_MAX_SIDE)
        ids: list[str] = []
        for side in _PHOTO_THUMB_SIDES:
            if side < max(largest):
                w, h = _fit(width, height, side)
                # A smaller rendition: its bytes are a stand-in, only the largest keeps the original.
                thumb = hashlib.sha256(data).digest() + f":{w}x{h}".encode()
                ids.append(
                    self._store_file(
                        state, thumb, kind="photo", source=source, source_url=source_url, width=w, height=h
                    ).file_id
                )
        ids.append(
            self._store_file(
                state,
                data,
                kind="photo",
                mime_type="image/jpeg",
                source=source,
                source_url=source_url,
                width=largest[0],
                height=largest[1],
            ).file_id
        )
        for file_id in ids:
            state.photo_groups[file_id] = tuple(ids)
        return ids

    def _photo_sizes(self, state: _BotState, ids: Iterable[str]) -> list[dict[str, Any]]:
        sizes = []
        for file_id in ids:
            stored = state.files[file_id]
            sizes.append(
                {
                    "file_id": stored.file_id,
                    "file_unique_id": stored.file_unique_id,
                    "file_size": stored.size,
                    "width": stored.width or 0,
                    "height": stored.height or 0,
                }
            )
        return sizes

    def _media_object(self, state: _BotState, kind: str, ref: str | list[str]) -> Any:
        if kind == "photo":
            return self._photo_sizes(state, ref if isinstance(ref, list) else state.photo_groups[ref])
        stored = state.files[cast(str, ref)]
        out: dict[str, Any] = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if kind in ("video", "audio"):
            out["duration"] = stored.duration or 0
        if kind == "video":
            out["width"] = stored.width or 1280
            out["height"] = stored.height or 720
        if stored.file_name:
            out["file_name"] = stored.file_name
        if stored.mime_type:
            out["mime_type"] = stored.mime_type
        out["file_size"] = stored.size
        return out

    # ---- incoming updates ----------------------------------------------------------------

    def push_update(self, update: dict[str, Any], *, token: str | None = None) -> int | None:
        """Queue an update for getUpdates, or for the webhook when one is set.

        An ``update_id`` is assigned when missing. Returns it, or None when the bot's
        ``allowed_updates`` filters the update out (Telegram never creates those).
        """
        state = self._state(token)
        kinds = [key for key in update if key != "update_id"]
        if kinds and kinds[0] not in state.allowed_updates:
            return None
        if "update_id" in update:
            update_id = int(update["update_id"])
            state.next_update_id = max(state.next_update_id, update_id + 1)
        else:
            update_id = state.next_update_id
            state.next_update_id += 1
        state.pending.append(
            {"update_id": update_id, **{k: v for k, v in update.items() if k != "update_id"}}
        )
        state.pending.sort(key=lambda u: int(u["update_id"]))
        state.pending_event.set()
        state.wake_long_poll(None)
        self._pulse()
        return update_id

    def _incoming_message(
        self, state: _BotState, chat_id: int | None, user: FakeUser | None, content: dict[str, Any]
    ) -> dict[str, Any]:
        user = user or state.users.get(chat_id or 0) or self.user
        if user.id not in state.users:
            self.add_user(user, token=state.token)
        target = chat_id if chat_id is not None else user.id
        chat = self._chat(state, target)
        message_id = chat.next_message_id
        chat.next_message_id += 1
        payload = {
            "message_id": message_id,
            "from": user.to_dict(),
            "chat": dict(chat.chat),
            "date": int(time.time()),
            **content,
        }
        chat.messages[message_id] = _StoredMessage(payload=payload, from_bot=False)
        return _copy(payload)

    def make_text_message(
        self,
        text: str,
        *,
        chat_id: int | None = None,
        user: FakeUser | None = None,
        entities: list[dict[str, Any]] | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """An update: the user writes ``text`` (the message is stored in the chat now)."""
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        message = self._incoming_message(self._state(token), chat_id, user, content)
        return {"message": message}

    def make_command(
        self,
        command: str,
        args: str = "",
        *,
        chat_id: int | None = None,
        user: FakeUser | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """An update: the user sends ``/command args``, with its bot_command entity."""
        head = command if command.startswith("/") else f"/{command}"
        text = f"{head} {args}" if args else head
        entity = {"type": "bot_command", "offset": 0, "length": _utf16_len(head)}
        return self.make_text_message(text, chat_id=chat_id, user=user, entities=[entity], token=token)

    def make_photo_message(
        self,
        data: bytes,
        *,
        caption: str | None = None,
        chat_id: int | None = None,
        user: FakeUser | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """An update: the user sends a photo; its sizes are registered, so getFile and download work."""
        state = self._state(token)
        ids = self._store_photo(state, data, source="test", source_url=None)
        content: dict[str, Any] = {"photo": self._photo_sizes(state, ids)}
        if caption:
            content["caption"] = caption
        return {"message": self._incoming_message(state, chat_id, user, content)}

    def make_document_message(
        self,
        data: bytes,
        *,
        file_name: str = "file.bin",
        mime_type: str | None = None,
        caption: str | None = None,
        chat_id: int | None = None,
        user: FakeUser | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """An update: the user sends a document, registered for getFile."""
        state = self._state(token)
        mime = mime_type or mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        stored = self._store_file(
            state, data, kind="document", file_name=file_name, mime_type=mime, source="test"
        )
        content: dict[str, Any] = {"document": self._media_object(state, "document", stored.file_id)}
        if caption:
            content["caption"] = caption
        return {"message": self._incoming_message(state, chat_id, user, content)}

    def make_callback_query(
        self,
        chat_id: int,
        message_id: int,
        data: str,
        *,
        user: FakeUser | None = None,
        check_button: bool = True,
        token: str | None = None,
    ) -> dict[str, Any]:
        """An update: the user presses the inline button with ``callback_data == data``.

        With ``check_button`` (the default) the button must really be on that message now,
        since a user can only press what is shown; LookupError otherwise.
        """
        state = self._state(token)
        chat = state.chats.get(chat_id)
        stored = chat.messages.get(message_id) if chat else None
        if stored is None or stored.deleted:
            raise LookupError(f"no message {message_id} in chat {chat_id}")
        if check_button:
            datas = [
                b.get("callback_data")
                for b in iter_buttons(_inline_markup(stored.payload.get("reply_markup")))
            ]
            if data not in datas:
                raise LookupError(f"message {message_id} has no button with callback_data={data!r}: {datas}")
        user = user or state.users.get(chat_id) or self.user
        query_id = str(next(self._callback_ids))
        state.callback_queries[query_id] = False
        query = {
            "id": query_id,
            "from": user.to_dict(),
            "message": _copy(stored.payload),
            "chat_instance": str(abs(hash((state.bot_id, chat_id))) % 10**19),
            "data": data,
        }
        return {"callback_query": query}

    # ---- faults --------------------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        """Add a fault; faults are tried in the order they were added."""
        self._faults.append(fault)
        return fault

    def fail_retry_after(
        self,
        retry_after: int = 5,
        *,
        method: str | None = None,
        chat_id: int | str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Answer 429 "Too Many Requests: retry after N" with ``parameters.retry_after``."""
        return self.inject(
            Fault(
                "error",
                method=method,
                chat_id=chat_id,
                times=times,
                status=429,
                description=f"Too Many Requests: retry after {retry_after}",
                parameters={"retry_after": retry_after},
            )
        )

    def fail_server_error(
        self,
        status: int = 500,
        *,
        description: str = INTERNAL_SERVER_ERROR,
        raw_body: str | None = None,
        method: str | None = None,
        chat_id: int | str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Answer a 5xx: Telegram's JSON envelope, or ``raw_body`` as HTML as its front proxy does."""
        return self.inject(
            Fault(
                "error",
                method=method,
                chat_id=chat_id,
                times=times,
                status=status,
                description=description,
                raw_body=raw_body,
            )
        )

    def fail_not_modified(self, *, method: str | None = None, times: int | None = 1) -> Fault:
        """Answer 400 "message is not modified" (edits produce it by themselves when nothing changes)."""
        return self.inject(
            Fault("error", method=method, times=times, status=400, description=MESSAGE_NOT_MODIFIED)
        )

    def fail_with(
        self,
        status: int,
        description: str,
        *,
        parameters: dict[str, Any] | None = None,
        method: str | None = None,
        chat_id: int | str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Answer any error envelope."""
        return self.inject(
            Fault(
                "error",
                method=method,
                chat_id=chat_id,
                times=times,
                status=status,
                description=description,
                parameters=parameters,
            )
        )

    def accept_then_drop(
        self, *, method: str | None = None, chat_id: int | str | None = None, times: int | None = 1
    ) -> Fault:
        """Carry the call out (the message really appears), then close the connection unanswered."""
        return self.inject(Fault("drop", method=method, chat_id=chat_id, times=times))

    def delay(
        self,
        seconds: float,
        *,
        method: str | None = None,
        chat_id: int | str | None = None,
        times: int | None = 1,
        after_perform: bool = False,
    ) -> Fault:
        """Wait before answering: before carrying the call out, or after it with ``after_perform``."""
        return self.inject(
            Fault(
                "delay",
                method=method,
                chat_id=chat_id,
                times=times,
                seconds=seconds,
                after_perform=after_perform,
            )
        )

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()

    def _take_faults(
        self, method: str, chat_id: int | str | None, bot_id: int
    ) -> tuple[list[Fault], Fault | None]:
        delays: list[Fault] = []
        outcome: Fault | None = None
        for fault in self._faults:
            if not fault.matches(method, chat_id, bot_id):
                continue
            if fault.kind == "delay":
                fault.hits += 1
                delays.append(fault)
            elif outcome is None:
                fault.hits += 1
                outcome = fault
        return delays, outcome

    # ---- HTTP ----------------------------------------------------------------------------

    async def _handle_unknown(self, request: web.Request) -> web.Response:
        return _json_response(404, _error_payload(404, NOT_FOUND, None))

    def _authorize(self, token: str) -> _BotState:
        if _TOKEN_RE.match(token) is None:
            raise _ApiError(401, INVALID_TOKEN)
        state = self._bots.get(token)
        if state is None:
            raise _ApiError(401, UNAUTHORIZED)
        return state

    async def _read_body(self, request: web.Request) -> tuple[dict[str, Any], list[UploadedPart]]:
        fields: dict[str, Any] = dict(request.query)
        files: list[UploadedPart] = []
        if not request.body_exists:
            return fields, files
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise _ApiError(400, "Bad Request: request body must be a JSON object")
            fields.update(body)
        elif request.content_type.startswith("multipart/"):
            form, files = await _read_multipart(await request.multipart())
            fields.update(form)
        else:
            post = await request.post()
            fields.update({k: v for k, v in post.items() if isinstance(v, str)})
        return fields, files

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        try:
            state = self._authorize(token)
        except _ApiError as error:
            return _json_response(error.status, _error_payload(error.status, error.description, None))
        raw_method = request.match_info["method"]
        canonical, handler = self._handlers.get(raw_method.lower(), (raw_method, None))
        try:
            fields, files = await self._read_body(request)
        except (ValueError, aiohttp.ClientError) as error:
            return _json_response(
                400, _error_payload(400, f"Bad Request: can't parse request: {error}", None)
            )
        call = self._record(state, canonical, request.method, request.content_type, fields, files, "http")
        delays, outcome = self._take_faults(canonical, call.chat_id, state.bot_id)
        call.fault = outcome
        for fault in delays:
            if not fault.after_perform:
                await asyncio.sleep(fault.seconds)

        if outcome is not None and outcome.kind == "error":
            status, payload = (
                outcome.status,
                _error_payload(outcome.status, outcome.description, outcome.parameters),
            )
            self._finish(call, status, payload)
            if outcome.raw_body is not None:
                return web.Response(status=status, text=outcome.raw_body, content_type="text/html")
            return _json_response(status, payload)

        status, payload = await self._perform(state, handler, call, files)
        for fault in delays:
            if fault.after_perform:
                await asyncio.sleep(fault.seconds)
        if outcome is not None and outcome.kind == "drop":
            # The work is done; the client never hears about it, like a connection lost mid-answer.
            call.dropped = True
            self._finish(call, None, payload)
            if request.transport is not None:
                request.transport.abort()
            # Writing to the aborted transport raises ConnectionResetError, which aiohttp treats as
            # the client having gone away: no error log, no answer on the wire.
            return web.Response(status=200)
        self._finish(call, status, payload)
        return _json_response(status, payload)

    def _record(
        self,
        state: _BotState,
        method: str,
        http_method: str,
        content_type: str,
        fields: Mapping[str, Any],
        files: list[UploadedPart],
        via: Literal["http", "webhook_reply"],
    ) -> RecordedCall:
        call = RecordedCall(
            seq=next(self._seq),
            method=method,
            path=f"/bot{state.bot_id}:***/{method}",
            bot_id=state.bot_id,
            http_method=http_method,
            content_type=content_type,
            fields={k: _as_text(v) for k, v in fields.items()},
            params=_decode_params(fields),
            files=tuple(files),
            at=time.monotonic(),
            via=via,
        )
        self._calls.append(call)
        self._pulse()
        return call

    def _finish(self, call: RecordedCall, status: int | None, payload: dict[str, Any]) -> None:
        call.status = status
        call.ok = bool(payload.get("ok"))
        call.description = payload.get("description")
        call.result = payload.get("result")
        call.finished_at = time.monotonic()
        self._pulse()

    async def _perform(
        self, state: _BotState, handler: Handler | None, call: RecordedCall, files: list[UploadedPart]
    ) -> tuple[int, dict[str, Any]]:
        if handler is None:
            return 404, _error_payload(404, METHOD_NOT_FOUND, None)
        request = _Request(params=call.params, files={part.name: part for part in files}, call=call)
        try:
            result = await handler(state, request)
        except _ApiError as error:
            return error.status, _error_payload(error.status, error.description, error.parameters)
        payload: dict[str, Any] = {"ok": True, "result": result}
        if request.description is not None:
            payload["description"] = request.description
        return 200, payload

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        path = request.match_info["path"]
        state = self._bots.get(token)
        stored = state.files_by_path.get(path) if state is not None else None
        status = 200 if stored is not None else 404
        self._downloads.append(FileDownload(state.bot_id if state else 0, path, status, time.monotonic()))
        self._pulse()
        if stored is None:
            return _json_response(404, _error_payload(404, NOT_FOUND, None))
        return web.Response(body=stored.data, content_type=stored.mime_type or "application/octet-stream")

    # ---- parameter helpers ---------------------------------------------------------------

    def _chat_id(self, state: _BotState, params: Mapping[str, Any]) -> int:
        value = params.get("chat_id")
        if value is None or value == "":
            raise _ApiError(400, CHAT_ID_EMPTY)
        if isinstance(value, bool):
            raise _ApiError(400, CHAT_NOT_FOUND)
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        if text.startswith("@") and text[1:].lower() in state.usernames:
            return state.usernames[text[1:].lower()]
        raise _ApiError(400, CHAT_NOT_FOUND)

    @staticmethod
    def _int(params: Mapping[str, Any], name: str, default: int) -> int:
        value = params.get(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            return default

    @staticmethod
    def _json(params: Mapping[str, Any], name: str, what: str) -> Any:
        value = params.get(name)
        if isinstance(value, str) and value:
            # Still text after decoding: it was not valid JSON.
            raise _ApiError(400, f"Bad Request: can't parse {what} JSON object")
        return value

    def _markup(self, params: Mapping[str, Any]) -> dict[str, Any] | None:
        value = self._json(params, "reply_markup", "reply keyboard markup")
        if value is None or value == "":
            return None
        if not isinstance(value, dict):
            raise _ApiError(400, "Bad Request: object expected as reply markup")
        return _inline_markup(value)

    def _writable(self, state: _BotState, chat_id: int) -> _Chat:
        if chat_id in state.blocked:
            raise _ApiError(403, BOT_BLOCKED)
        return self._chat(state, chat_id)

    def _existing(
        self, state: _BotState, params: Mapping[str, Any], what: str
    ) -> tuple[_Chat, _StoredMessage]:
        if params.get("inline_message_id"):
            # Inline-mode messages have no chat to show them in; nothing in the project sends them.
            raise _ApiError(400, "Bad Request: inline_message_id is not supported by the fake Bot API")
        chat_id = self._chat_id(state, params)
        message_id = self._int(params, "message_id", 0)
        chat = state.chats.get(chat_id)
        stored = chat.messages.get(message_id) if chat else None
        if chat is None or stored is None or stored.deleted:
            raise _ApiError(400, what)
        if not stored.from_bot:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return chat, stored

    def _resolve_file(
        self,
        state: _BotState,
        request: _Request,
        value: Any,
        field_name: str,
        kind: MediaKind,
        *,
        missing: str,
        extra: Mapping[str, Any],
    ) -> str | list[str]:
        """A file reference to a stored file_id (size ids for a photo), like Telegram's get_input_file."""
        part: UploadedPart | None = None
        if isinstance(value, str) and value.startswith("attach://"):
            part = request.files.get(value.removeprefix("attach://"))
        elif isinstance(value, str) and value:
            if _is_url(value):
                return self._from_url(state, value, kind, extra)
            if value in state.photo_groups and kind == "photo":
                return list(state.photo_groups[value])
            if value in state.files:
                return value
            raise _ApiError(400, WRONG_FILE_ID)
        else:
            part = request.files.get(field_name)
        if part is None:
            raise _ApiError(400, missing)
        if part.size == 0:
            raise _ApiError(400, FILE_EMPTY)
        if part.size > MAX_UPLOAD_SIZE:
            raise _ApiError(413, "Request Entity Too Large")
        if kind == "photo":
            return self._store_photo(state, part.data, source="upload", source_url=None)
        mime = part.content_type
        if mime == "application/octet-stream" and part.filename:
            mime = mimetypes.guess_type(part.filename)[0] or mime
        if kind != "document" and mime == "application/octet-stream":
            mime = _DEFAULT_MIME[kind]
        return self._store_file(
            state,
            part.data,
            kind=kind,
            file_name=part.filename,
            mime_type=mime,
            source="upload",
            width=self._int(extra, "width", 0) or None,
            height=self._int(extra, "height", 0) or None,
            duration=self._int(extra, "duration", 0) or None,
        ).file_id

    def _from_url(
        self, state: _BotState, url: str, kind: MediaKind, extra: Mapping[str, Any]
    ) -> str | list[str]:
        known = self._url_contents.get(url)
        if known is None and self.strict_urls:
            raise _ApiError(400, URL_CONTENT_FAILED)
        data, mime = known if known is not None else (f"fake content of {url}".encode(), None)
        if kind == "photo":
            return self._store_photo(state, data, source="url", source_url=url)
        name = URL(url).name or None
        return self._store_file(
            state,
            data,
            kind=kind,
            file_name=name,
            mime_type=mime or _DEFAULT_MIME.get(kind) or (mimetypes.guess_type(url)[0] if name else None),
            source="url",
            source_url=url,
            width=self._int(extra, "width", 0) or None,
            height=self._int(extra, "height", 0) or None,
            duration=self._int(extra, "duration", 0) or None,
        ).file_id

    def _caption(self, source: Mapping[str, Any]) -> dict[str, Any]:
        caption = source.get("caption")
        if not isinstance(caption, str) or not caption:
            return {}
        text, entities = _formatted(caption, source.get("parse_mode"), source.get("caption_entities"))
        out: dict[str, Any] = {"caption": text} if text else {}
        if entities:
            out["caption_entities"] = entities
        return out

    def _new_message(
        self,
        state: _BotState,
        chat: _Chat,
        params: Mapping[str, Any],
        content: dict[str, Any],
        *,
        reply_markup: dict[str, Any] | None,
        media_group_id: str | None = None,
        reply_to: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        payload: dict[str, Any] = {
            "message_id": message_id,
            "from": state.bot_user(),
            "chat": dict(chat.chat),
            "date": int(time.time()),
        }
        if media_group_id:
            payload["media_group_id"] = media_group_id
        if reply_to is not None:
            payload["reply_to_message"] = reply_to
        payload.update(content)
        if params.get("has_spoiler") is True:
            payload["has_media_spoiler"] = True
        if reply_markup is not None:
            payload["reply_markup"] = reply_markup
        chat.messages[message_id] = _StoredMessage(payload=payload, from_bot=True)
        return _copy(payload)

    def _reply_to(self, chat: _Chat, params: Mapping[str, Any]) -> dict[str, Any] | None:
        reply = self._json(params, "reply_parameters", "reply parameters")
        target: int | None = None
        allow_missing = bool(params.get("allow_sending_without_reply"))
        if isinstance(reply, dict) and reply.get("message_id") is not None:
            target = int(reply["message_id"])
            allow_missing = allow_missing or bool(reply.get("allow_sending_without_reply"))
        elif params.get("reply_to_message_id") is not None:
            target = self._int(params, "reply_to_message_id", 0)
        if target is None:
            return None
        stored = chat.messages.get(target)
        if stored is None or stored.deleted:
            if allow_missing:
                return None
            raise _ApiError(400, REPLY_NOT_FOUND)
        quoted = dict(stored.payload)
        quoted.pop("reply_to_message", None)  # Telegram nests one level only
        return quoted

    # ---- methods -------------------------------------------------------------------------

    async def _m_get_me(self, state: _BotState, request: _Request) -> Any:
        return state.me()

    def _set_allowed(self, state: _BotState, params: Mapping[str, Any]) -> None:
        value = params.get("allowed_updates")
        if value is None:
            return  # "If not specified, the previous setting will be used."
        if isinstance(value, str):
            raise _ApiError(400, "Bad Request: can't parse allowed updates JSON object")
        names = {str(v) for v in value if str(v) in UPDATE_TYPES} if isinstance(value, list) else set()
        state.allowed_updates = frozenset(names) if names else DEFAULT_ALLOWED_UPDATES

    async def _m_get_updates(self, state: _BotState, request: _Request) -> Any:
        if state.webhook is not None:
            raise _ApiError(409, CONFLICT_WEBHOOK_ACTIVE)
        params = request.params
        offset = self._int(params, "offset", 0)
        limit = min(max(self._int(params, "limit", 100), 1), 100)
        timeout = min(max(self._int(params, "timeout", 0), 0), TELEGRAM_MAX_POLL_TIMEOUT)
        self._set_allowed(state, params)
        if offset < 0:
            # "-offset update from the end of the updates queue. All previous updates will be forgotten."
            del state.pending[: max(0, len(state.pending) + offset)]
        elif offset > 0:
            # Confirmation: everything below the offset is gone for good.
            state.pending[:] = [u for u in state.pending if int(u["update_id"]) >= offset]
        if state.pending or timeout == 0:
            return [dict(u) for u in state.pending[:limit]]

        # A long poll. Only now does an older waiting poll get ended (Telegram's abort_long_poll).
        loop = asyncio.get_running_loop()
        state.wake_long_poll(CONFLICT_OTHER_GET_UPDATES)
        deadline = loop.time() + min(float(timeout), self.long_poll_cap)
        while True:
            waiter: asyncio.Future[str | None] = loop.create_future()
            state.long_poll = waiter
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    outcome = await waiter
            except TimeoutError:
                return []
            finally:
                if state.long_poll is waiter:
                    state.long_poll = None
            if outcome is not None:
                raise _ApiError(409, outcome)
            if self._stopping:
                return []
            batch = [u for u in state.pending if int(u["update_id"]) >= offset][:limit]
            if batch:
                return [dict(u) for u in batch]

    async def _m_set_webhook(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        url = str(params.get("url") or "")
        if not url:
            return await self._m_delete_webhook(state, request)
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise _ApiError(400, WEBHOOK_BAD_URL)
        if not _is_loopback(parsed.host):
            raise _ApiError(
                400, "Bad Request: bad webhook: the fake Bot API delivers to loopback addresses only"
            )
        secret = params.get("secret_token")
        secret = str(secret) if secret else None
        if secret is not None and len(secret) > 256:
            raise _ApiError(400, SECRET_TOO_LONG)
        if secret is not None and not _SECRET_RE.match(secret):
            raise _ApiError(400, SECRET_BAD_CHARS)
        max_connections = min(max(self._int(params, "max_connections", 40), 1), 100)
        drop = params.get("drop_pending_updates") is True
        self._set_allowed(state, params)
        current = state.webhook
        if (
            current is not None
            and (current.url, current.secret_token, current.max_connections) == (url, secret, max_connections)
            and not drop
        ):
            request.description = "Webhook is already set"
            return True
        state.wake_long_poll(CONFLICT_SET_WEBHOOK)
        await self._close_webhook(state)
        if drop:
            state.pending.clear()
        hook = _Webhook(url=url, secret_token=secret, max_connections=max_connections)
        state.webhook = hook
        hook.task = asyncio.create_task(
            self._webhook_worker(state, hook), name=f"fake-webhook-{state.bot_id}"
        )
        request.description = "Webhook was set"
        return True

    async def _close_webhook(self, state: _BotState) -> bool:
        hook = state.webhook
        if hook is None:
            return False
        state.webhook = None
        if hook.task is not None:
            hook.task.cancel()
            await asyncio.gather(hook.task, return_exceptions=True)
        return True

    async def _m_delete_webhook(self, state: _BotState, request: _Request) -> Any:
        was_set = await self._close_webhook(state)
        if request.params.get("drop_pending_updates") is True:
            state.pending.clear()
        request.description = "Webhook was deleted" if was_set else "Webhook is already deleted"
        return True

    async def _m_get_webhook_info(self, state: _BotState, request: _Request) -> Any:
        hook = state.webhook
        info: dict[str, Any] = {
            "url": hook.url if hook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(state.pending),
        }
        if state.last_error_date is not None:
            info["last_error_date"] = state.last_error_date
            info["last_error_message"] = state.last_error_message
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
        if state.allowed_updates != DEFAULT_ALLOWED_UPDATES:
            info["allowed_updates"] = [t for t in UPDATE_TYPES if t in state.allowed_updates]
        return info

    async def _m_send_message(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat = self._writable(state, self._chat_id(state, params))
        raw = params.get("text")
        text, entities = _formatted(
            raw if isinstance(raw, str) else "", params.get("parse_mode"), params.get("entities")
        )
        if not text:
            raise _ApiError(400, MESSAGE_TEXT_EMPTY)
        if _utf16_len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        return self._new_message(
            state,
            chat,
            params,
            content,
            reply_markup=self._markup(params),
            reply_to=self._reply_to(chat, params),
        )

    async def _send_media(self, state: _BotState, request: _Request, kind: MediaKind) -> Any:
        params = request.params
        chat = self._writable(state, self._chat_id(state, params))
        ref = self._resolve_file(
            state,
            request,
            params.get(kind),
            kind,
            kind,
            missing=f"Bad Request: there is no {kind} in the request",
            extra=params,
        )
        content: dict[str, Any] = {kind: self._media_object(state, kind, ref)}
        if kind == "audio":
            for key in ("performer", "title"):
                if params.get(key):
                    content[kind][key] = str(params[key])
        content.update(self._caption(params))
        return self._new_message(
            state,
            chat,
            params,
            content,
            reply_markup=self._markup(params),
            reply_to=self._reply_to(chat, params),
        )

    async def _m_send_photo(self, state: _BotState, request: _Request) -> Any:
        return await self._send_media(state, request, "photo")

    async def _m_send_video(self, state: _BotState, request: _Request) -> Any:
        return await self._send_media(state, request, "video")

    async def _m_send_audio(self, state: _BotState, request: _Request) -> Any:
        return await self._send_media(state, request, "audio")

    async def _m_send_document(self, state: _BotState, request: _Request) -> Any:
        return await self._send_media(state, request, "document")

    def _input_media(
        self, state: _BotState, request: _Request, item: Any
    ) -> tuple[MediaKind, dict[str, Any]]:
        if not isinstance(item, dict):
            raise _ApiError(400, "Bad Request: can't parse InputMedia: Object expected")
        kind = item.get("type")
        if kind not in _MEDIA_KINDS:
            raise _ApiError(400, f'Bad Request: can\'t parse InputMedia: type "{kind}" is unsupported')
        media_kind = cast(MediaKind, kind)
        ref = self._resolve_file(
            state,
            request,
            item.get("media"),
            "",
            media_kind,
            missing="Bad Request: can't parse InputMedia: media not found",
            extra=item,
        )
        content: dict[str, Any] = {media_kind: self._media_object(state, media_kind, ref)}
        if media_kind == "audio":
            for key in ("performer", "title"):
                if item.get(key):
                    content[media_kind][key] = str(item[key])
        content.update(self._caption(item))
        if item.get("has_spoiler") is True:
            content["has_media_spoiler"] = True
        return media_kind, content

    async def _m_send_media_group(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat = self._writable(state, self._chat_id(state, params))
        media = self._json(params, "media", "media")
        if not isinstance(media, list):
            raise _ApiError(400, "Bad Request: expected an Array of InputMedia")
        kinds_contents = [self._input_media(state, request, item) for item in media]
        kinds = {kind for kind, _ in kinds_contents}
        # Photos and videos mix freely; audio and documents only form albums of their own kind.
        if len(kinds) > 1 and not kinds <= {"photo", "video"}:
            raise _ApiError(400, ALBUM_MEDIA_MIX)
        reply_to = self._reply_to(chat, params)
        group_id = str(13_000_000_000_000_000 + state.bot_id % 1000 * 10**6 + next(state.media_group_counter))
        return [
            self._new_message(
                state, chat, params, content, reply_markup=None, media_group_id=group_id, reply_to=reply_to
            )
            for _, content in kinds_contents
        ]

    def _apply_edit(
        self, chat: _Chat, stored: _StoredMessage, new_content: dict[str, Any], markup: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Replace what the message shows, or fail "not modified" when nothing would change."""
        shown_keys = _SHOWN_KEYS
        current = {k: stored.payload[k] for k in shown_keys if k in stored.payload}
        proposed = dict(new_content)
        if markup is not None:
            proposed["reply_markup"] = markup
        if current == proposed:
            raise _ApiError(400, MESSAGE_NOT_MODIFIED)
        for key in shown_keys:
            stored.payload.pop(key, None)
        stored.payload.update(proposed)
        stored.payload["edit_date"] = int(time.time())
        stored.edits += 1
        return _copy(stored.payload)

    def _shown(self, stored: _StoredMessage, *keys: str) -> dict[str, Any]:
        return {k: stored.payload[k] for k in keys if k in stored.payload}

    async def _m_edit_message_text(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat, stored = self._existing(state, params, MESSAGE_TO_EDIT_NOT_FOUND)
        if "text" not in stored.payload:
            raise _ApiError(400, NO_TEXT_TO_EDIT)
        raw = params.get("text")
        text, entities = _formatted(
            raw if isinstance(raw, str) else "", params.get("parse_mode"), params.get("entities")
        )
        if not text:
            raise _ApiError(400, MESSAGE_TEXT_EMPTY)
        content: dict[str, Any] = {"text": text}
        if entities:
            content["entities"] = entities
        # Without reply_markup the edit removes the inline keyboard, as on Telegram.
        return self._apply_edit(chat, stored, content, self._markup(params))

    async def _m_edit_message_caption(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat, stored = self._existing(state, params, MESSAGE_TO_EDIT_NOT_FOUND)
        media = self._shown(stored, *_MEDIA_KINDS, "has_media_spoiler")
        if not media:
            raise _ApiError(400, NO_MEDIA_TO_EDIT)
        return self._apply_edit(chat, stored, media | self._caption(params), self._markup(params))

    async def _m_edit_message_media(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat, stored = self._existing(state, params, MESSAGE_TO_EDIT_NOT_FOUND)
        # Media may replace media, or be added to a text message (the Bot API allows both since
        # it documents "or to add media to text messages"); anything else has nothing to edit.
        if not self._shown(stored, *_MEDIA_KINDS) and "text" not in stored.payload:
            raise _ApiError(400, NO_MEDIA_TO_EDIT)
        item = self._json(params, "media", "input media")
        if item is None:
            raise _ApiError(400, 'Bad Request: parameter "media" is required')
        _, content = self._input_media(state, request, item)
        return self._apply_edit(chat, stored, content, self._markup(params))

    async def _m_edit_message_reply_markup(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat, stored = self._existing(state, params, MESSAGE_TO_EDIT_NOT_FOUND)
        keep = ("text", "entities", "caption", "caption_entities", "has_media_spoiler", *_MEDIA_KINDS)
        return self._apply_edit(chat, stored, self._shown(stored, *keep), self._markup(params))

    async def _m_delete_message(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        chat_id = self._chat_id(state, params)
        chat = state.chats.get(chat_id)
        stored = chat.messages.get(self._int(params, "message_id", 0)) if chat else None
        if stored is None or stored.deleted:
            raise _ApiError(400, MESSAGE_TO_DELETE_NOT_FOUND)
        stored.deleted = True
        return True

    async def _m_answer_callback_query(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        query_id = str(params.get("callback_query_id") or "")
        # A query can be answered once; an unknown or answered id is "too old" to Telegram.
        if state.callback_queries.get(query_id) is not False:
            raise _ApiError(400, QUERY_TOO_OLD)
        state.callback_queries[query_id] = True
        text = params.get("text")
        url = params.get("url")
        state.callback_answers.append(
            ReceivedCallbackAnswer(
                callback_query_id=query_id,
                text=str(text) if text else None,
                show_alert=params.get("show_alert") is True,
                url=str(url) if url else None,
            )
        )
        return True

    async def _m_send_chat_action(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        self._writable(state, self._chat_id(state, params))
        if params.get("action") not in CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _commands_key(self, params: Mapping[str, Any]) -> tuple[str, str]:
        scope = self._json(params, "scope", "BotCommandScope")
        scope = scope if isinstance(scope, dict) else {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _m_set_my_commands(self, state: _BotState, request: _Request) -> Any:
        params = request.params
        commands = self._json(params, "commands", "commands")
        if not isinstance(commands, list):
            raise _ApiError(400, "Bad Request: expected an Array of BotCommand")
        for command in commands:
            name = command.get("command") if isinstance(command, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_]{1,32}", name.removeprefix("/")):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        state.commands[self._commands_key(params)] = [
            {"command": c["command"].removeprefix("/"), "description": c.get("description", "")}
            for c in commands
        ]
        return True

    async def _m_get_my_commands(self, state: _BotState, request: _Request) -> Any:
        return state.commands.get(self._commands_key(request.params), [])

    async def _m_delete_my_commands(self, state: _BotState, request: _Request) -> Any:
        state.commands.pop(self._commands_key(request.params), None)
        return True

    async def _m_get_file(self, state: _BotState, request: _Request) -> Any:
        file_id = str(request.params.get("file_id") or "")
        if not file_id:
            raise _ApiError(400, "Bad Request: file_id not specified")
        stored = state.files.get(file_id)
        if stored is None:
            raise _ApiError(400, INVALID_FILE_ID)
        if stored.size > MAX_DOWNLOAD_SIZE:
            raise _ApiError(400, FILE_TOO_BIG)
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    # ---- webhook delivery ----------------------------------------------------------------

    async def _webhook_worker(self, state: _BotState, hook: _Webhook) -> None:
        """Deliver pending updates one at a time, in order, until the webhook changes."""
        while state.webhook is hook:
            state.pending_event.clear()
            if not state.pending:
                await state.pending_event.wait()
                continue
            update = state.pending[0]
            await self._deliver(state, hook, update)
            if state.pending and state.pending[0] is update:
                state.pending.pop(0)
            self._pulse()

    async def _deliver(self, state: _BotState, hook: _Webhook, update: dict[str, Any]) -> None:
        assert self._client is not None
        body = json.dumps(update, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if hook.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret_token
        delay = self.webhook_retry_base
        for attempt in range(1, self.webhook_max_attempts + 1):
            status: int | None = None
            error: str | None = None
            retry_after = 0.0
            reply: tuple[str, dict[str, Any], list[UploadedPart]] | None = None
            try:
                timeout = aiohttp.ClientTimeout(total=self.webhook_timeout)
                async with self._client.post(
                    hook.url, data=body, headers=headers, timeout=timeout
                ) as response:
                    status = response.status
                    if 200 <= status <= 299:
                        reply = await self._read_reply(response)
                    else:
                        error = f"Wrong response from the webhook: {status} {response.reason}"
                        retry_after = self._retry_after(response.headers)
            except TimeoutError:
                error = "Timeout expired"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except aiohttp.ClientError:
                error = "Webhook connection closed"
            state.deliveries.append(
                WebhookDelivery(
                    update_id=int(update["update_id"]),
                    attempt=attempt,
                    url=hook.url,
                    secret_token=hook.secret_token,
                    status=status,
                    error=error,
                    at=time.monotonic(),
                )
            )
            if error is None:
                self._pulse()
                if reply is not None:
                    await self._webhook_reply(state, *reply)
                return
            state.last_error_date = int(time.time())
            state.last_error_message = error
            self._pulse()
            if attempt == self.webhook_max_attempts:
                return  # given up: Telegram drops an update it cannot deliver
            # Telegram retries the first failure at once, then doubles the wait; a Retry-After wins.
            if retry_after > 0:
                await asyncio.sleep(min(retry_after, self.webhook_retry_cap))
            elif attempt > 1:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.webhook_retry_cap)

    @staticmethod
    def _retry_after(headers: CIMultiDictProxy[str]) -> float:
        try:
            return max(0.0, float(headers.get("Retry-After", "0")))
        except ValueError:
            return 0.0

    @staticmethod
    async def _read_reply(
        response: aiohttp.ClientResponse,
    ) -> tuple[str, dict[str, Any], list[UploadedPart]] | None:
        """A method in the webhook's answer (Telegram's "webhook reply"), if there is one."""
        if response.content_type == "application/json":
            try:
                body = await response.json()
            except (ValueError, aiohttp.ContentTypeError):
                return None
            return (
                (response.content_type, body, []) if isinstance(body, dict) and body.get("method") else None
            )
        if response.content_type.startswith("multipart/"):
            reader = aiohttp.MultipartReader(response.headers, response.content)
            fields, files = await _read_multipart(reader)
            return (response.content_type, dict(fields), files) if fields.get("method") else None
        return None

    async def _webhook_reply(
        self, state: _BotState, content_type: str, fields: dict[str, Any], files: list[UploadedPart]
    ) -> None:
        method = str(fields.pop("method")).lower()
        # Telegram ignores these in a webhook reply (WebhookActor.cpp).
        if method in ("deletewebhook", "setwebhook", "close", "logout") or method.startswith("get"):
            return
        canonical, handler = self._handlers.get(method, (method, None))
        call = self._record(state, canonical, "POST", content_type, fields, files, "webhook_reply")
        status, payload = await self._perform(state, handler, call, files)
        self._finish(call, status, payload)


def iter_buttons(markup: Mapping[str, Any] | None) -> Iterator[dict[str, Any]]:
    """Every button of an inline keyboard, row by row."""
    if not markup:
        return
    for row in markup.get("inline_keyboard", []):
        yield from row
