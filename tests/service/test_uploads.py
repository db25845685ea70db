"""POST /api/v1/uploads: a file (multipart or the raw body) becomes a signed link to our copy, which
opens without an API key and is what KIE is handed; anything but an image, a video or an audio
file is refused, and so is anything over 30 MB, with nothing kept of it."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import payload
from aiohttp.test_utils import TestServer

from app.api_keys import owner_of
from app.kie.catalog_loader import default_catalog
from app.kie.simulator import SIM_STATE, make_app
from app.kie.simulator.assets import FILES
from app.kie.simulator.state import SimTask
from app.storage.uploads import MAX_UPLOAD_BYTES
from tests.support.stack import API_KEY, ServerFactory, Stack, stack_on, valid_input

PNG = FILES["png"][1]
MP4 = FILES["mp4"][1]
MP3 = FILES["mp3"][1]
UPLOADS = "/api/v1/uploads"
_ZEROS = bytes(1024 * 1024)  # one buffer of zeros, sliced, for the large bodies


@pytest.fixture
async def sim(aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(make_app(latency=0.1))


@pytest.fixture
async def stack(
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
    sim: TestServer,
) -> Stack:
    return await stack_on(aiohttp_server, http, database_url, tmp_path, sim)


async def upload(stack: Stack, **kwargs: Any) -> tuple[int, Any]:
    return await stack.api("POST", UPLOADS, **kwargs)


async def fetch(http: aiohttp.ClientSession, url: str, **kwargs: Any) -> tuple[int, bytes, Any]:
    async with http.get(url, **kwargs) as resp:
        return resp.status, await resp.read(), resp.headers


def form(data: bytes, *, filename: str | None, content_type: str, **fields: str) -> aiohttp.FormData:
    """A multipart form: ``fields`` (text) first, then the file as ``file``.

    The file name goes as browsers and curl send it (aiohttp's default would percent-encode it).
    """
    body = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        body.add_field(name, value)
    body.add_field("file", data, filename=filename, content_type=content_type)
    return body


async def padded(head: bytes, total: int) -> AsyncIterator[bytes]:
    """``head`` then zeros, ``total`` bytes in all, in 1 MB chunks."""
    yield head
    left = total - len(head)
    while left > 0:
        chunk = _ZEROS if left >= len(_ZEROS) else _ZEROS[:left]
        left -= len(chunk)
        yield chunk


def stored_files(tmp_path: Path) -> list[Path]:
    """Every file in the local store (``DATA_DIR/files``), temporary ones included."""
    root = tmp_path / "data" / "files"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


async def upload_rows(stack: Stack) -> int:
    count = await stack.pool.fetchval("SELECT count(*) FROM uploads")
    assert isinstance(count, int)
    return count


async def check_created(
    stack: Stack, tmp_path: Path, body: Any, data: bytes, content_type: str, name: str | None = None
) -> None:
    """The 201 body describes ``data``; its link, the store and the ``uploads`` row all hold it."""
    assert set(body) == {"url", "name", "content_type", "bytes", "sha256"}, body
    assert body["content_type"] == content_type
    assert body["bytes"] == len(data) and body["sha256"] == hashlib.sha256(data).hexdigest()
    if name is not None:
        assert body["name"] == name
    parts = urlsplit(body["url"])
    assert f"{parts.scheme}://{parts.netloc}" == stack.base_url
    prefix, upload_id, link_name = parts.path.rsplit("/", 2)
    assert prefix == "/files" and link_name == body["name"]
    assert set(parse_qs(parts.query)) == {"exp", "sig"}
    # Valid for at least FILE_URL_TTL_S from when it was minted (a moment ago).
    assert int(parse_qs(parts.query)["exp"][0]) > time.time() + stack.runtime.settings.file_url_ttl_s - 60

    row = await stack.pool.fetchrow("SELECT * FROM uploads WHERE id = $1", uuid.UUID(upload_id))
    assert row is not None
    assert (row["owner"], row["name"], row["content_type"]) == (owner_of(API_KEY), body["name"], content_type)
    assert (row["bytes"], row["sha256"]) == (len(data), body["sha256"])
    assert (tmp_path / "data" / "files" / upload_id / body["name"]).read_bytes() == data

    # The link is the key: no X-API-Key, and the bytes and their type come back as they went in.
    status, served, headers = await fetch(stack.session, body["url"])
    assert status == 200 and served == data
    assert headers["Content-Type"] == content_type
    assert int(headers["Content-Length"]) == len(data) and headers["ETag"] == f'"{body["sha256"]}"'
    assert headers["X-Content-Type-Options"] == "nosniff" and "sandbox" in headers["Content-Security-Policy"]


# --- accepted ------------------------------------------------------------------------------------


async def test_multipart_files_are_stored_and_their_links_open_without_a_key(
    stack: Stack, tmp_path: Path
) -> None:
    status, body = await upload(stack, data=form(PNG, filename="photo.png", content_type="image/png"))
    assert status == 201, body
    await check_created(stack, tmp_path, body, PNG, "image/png", name="photo.png")
    # The link opens that file only: not with a forged signature, nor under another name.
    link = urlsplit(body["url"])
    forged = body["url"][:-2] + ("AA" if not body["url"].endswith("AA") else "BB")
    assert (await fetch(stack.session, forged))[0] == 403
    other_name = f"{stack.base_url}{link.path.rsplit('/', 1)[0]}/other.png?{link.query}"
    assert (await fetch(stack.session, other_name))[0] == 403
    assert (await fetch(stack.session, other_name, headers={"X-API-Key": API_KEY}))[0] == 404
    bare = f"{stack.base_url}{link.path}"
    status, served, _ = await fetch(stack.session, bare, headers={"X-API-Key": API_KEY})
    assert status == 200 and served == PNG

    # Text fields before the file are skipped.
    data = form(MP3, filename="voice.mp3", content_type="audio/mpeg", note="hello", other="x" * 1000)
    status, body = await upload(stack, data=data)
    assert status == 201, body
    await check_created(stack, tmp_path, body, MP3, "audio/mpeg", name="voice.mp3")

    # A part sent as application/octet-stream is sniffed.
    status, body = await upload(
        stack, data=form(MP4, filename="clip", content_type="application/octet-stream")
    )
    assert status == 201, body
    await check_created(stack, tmp_path, body, MP4, "video/mp4", name="clip")
    assert await upload_rows(stack) == 3 and len(stored_files(tmp_path)) == 3


async def test_raw_bodies_are_stored_under_their_type_or_the_sniffed_one(
    stack: Stack, tmp_path: Path
) -> None:
    cases = [
        (PNG, "image/png", "image/png", "upload.png"),
        (MP4, "video/mp4", "video/mp4", "upload.mp4"),
        (MP3, "audio/mpeg", "audio/mpeg", "upload.mp3"),
        (PNG, "Image/PNG; charset=binary", "image/png", "upload.png"),
        (PNG, "application/octet-stream", "image/png", "upload.png"),
        (MP4, "application/octet-stream", "video/mp4", "upload.mp4"),
        (MP3, "binary/octet-stream", "audio/mpeg", "upload.mp3"),
    ]
    for data, declared, expected, name in cases:
        status, body = await upload(stack, data=data, headers={"Content-Type": declared})
        assert status == 201, (declared, body)
        await check_created(stack, tmp_path, body, data, expected, name=name)
    assert await upload_rows(stack) == len(cases)

    # A chunked body (no Content-Length) spanning many reads is stored whole.
    large = PNG + bytes(3 * 1024 * 1024 + 17)

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(0, len(large), 100_000):
            yield large[offset : offset + 100_000]

    status, body = await upload(stack, data=chunks(), headers={"Content-Type": "image/png"})
    assert status == 201, body
    await check_created(stack, tmp_path, body, large, "image/png", name="upload.png")

    # The same file twice is two uploads with two links.
    first = await upload(stack, data=PNG, headers={"Content-Type": "image/png"})
    second = await upload(stack, data=PNG, headers={"Content-Type": "image/png"})
    assert first[0] == second[0] == 201
    assert first[1]["url"] != second[1]["url"] and first[1]["sha256"] == second[1]["sha256"]
    assert await upload_rows(stack) == len(cases) + 3 and len(stored_files(tmp_path)) == len(cases) + 3


SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


async def test_client_file_names_are_made_safe(stack: Stack, tmp_path: Path) -> None:
    cases = [
        ("../../etc/pass wd.png", "pass-wd.png"),
        ("C:\\Users\\me\\My Photo (1).png", "My-Photo-1-.png"),
        ("...hidden.png", "hidden.png"),
        ("my..photo.png", "my.photo.png"),
        ("..%2F..%2Fsecret.png", "secret.png"),  # percent-encoded, as aiohttp's client sends names
        ("my%20photo.png", "my-photo.png"),
        ("say cheese; rm -rf *.png", "say-cheese-rm--rf-.png"),
        ("photo.png", "photo.png"),
        # Nothing safe left: the default name, with the type's extension.
        ("", "upload.png"),
        ("../", "upload.png"),
        ("???", "upload.png"),
        ("-.-", "upload.png"),
        ("...", "upload.png"),
        # Whatever comes in, what is kept is a short safe name.
        ("кот.png", None),
        ("日本語の写真 (2).jpeg", None),
        ("a" * 150 + ".png", "a" * 96 + ".png"),  # cut to 100, the extension kept
        ("a" + "." * 150, None),
    ]
    for filename, expected in cases:
        status, body = await upload(stack, data=form(PNG, filename=filename, content_type="image/png"))
        assert status == 201, (filename, body)
        assert SAFE_NAME.match(body["name"]) and ".." not in body["name"], (filename, body["name"])
        await check_created(stack, tmp_path, body, PNG, "image/png", name=expected)
    # A raw body has no file name: the default one, after its (sniffed) type.
    status, body = await upload(stack, data=MP4, headers={"Content-Type": "application/octet-stream"})
    assert status == 201 and body["name"] == "upload.mp4", body


async def test_exactly_30_mb_is_accepted(stack: Stack, tmp_path: Path) -> None:
    status, body = await upload(
        stack, data=padded(PNG, MAX_UPLOAD_BYTES), headers={"Content-Type": "image/png"}
    )
    assert status == 201, body
    assert body["bytes"] == MAX_UPLOAD_BYTES
    digest = hashlib.sha256(PNG)
    left = MAX_UPLOAD_BYTES - len(PNG)
    while left:
        step = min(left, len(_ZEROS))
        digest.update(_ZEROS[:step])
        left -= step
    assert body["sha256"] == digest.hexdigest()
    (stored,) = stored_files(tmp_path)
    assert stored.stat().st_size == MAX_UPLOAD_BYTES
    assert await upload_rows(stack) == 1


# --- refused -------------------------------------------------------------------------------------


async def check_refused(
    stack: Stack, tmp_path: Path, status: int, body: Any, expected: int, error: str
) -> None:
    assert status == expected, body
    assert isinstance(body, dict) and body["error"] == error, body
    assert isinstance(body["message"], str) and body["message"]
    assert await upload_rows(stack) == 0
    assert stored_files(tmp_path) == [], "nothing of a refused upload is kept"


async def test_anything_but_a_media_file_is_refused_with_422(stack: Stack, tmp_path: Path) -> None:
    cases = [
        (b"hello, world\n", "text/plain", "not text/plain"),
        (b"<html><body>hi</body></html>", "text/html; charset=utf-8", "not text/html"),
        (b'{"a": 1}', "application/json", "not application/json"),
        (PNG, "application/pdf", "not application/pdf"),
        (MP3, "image/png", "says it is image/png but its content is audio/mpeg"),
        (MP4, "image/png", "says it is image/png but its content is video/mp4"),
        (PNG, "video/mp4", "says it is video/mp4 but its content is image/png"),
        (PNG, "audio/mpeg", "says it is audio/mpeg but its content is image/png"),
        (b"\x00\x01\x02 nothing we know" * 10, "application/octet-stream", "recognise"),
        (b"just text", "binary/octet-stream", "recognise"),
        (b"", "image/png", "empty"),
        (b"", "video/mp4", "empty"),
        (b"", "application/octet-stream", "empty"),
        # Served from our domain: content we cannot recognise is never taken, whatever it claims.
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "image/svg+xml",
            "recognise",
        ),
        (b"<html><script>alert(1)</script></html>", "image/png", "recognise"),
        (b"\x00" * 64, "audio/aac", "recognise"),
    ]
    for data, content_type, says in cases:
        status, body = await upload(stack, data=data, headers={"Content-Type": content_type})
        await check_refused(stack, tmp_path, status, body, 422, "invalid_input")
        assert body == {"error": "invalid_input", "message": body["message"], "field": "file"}
        assert says in body["message"], (content_type, body)

    multipart = [
        (form(MP3, filename="photo.png", content_type="image/png"), "its content is audio/mpeg"),
        (form(b"hello", filename="notes.txt", content_type="text/plain"), "not text/plain"),
        (form(b"", filename="empty.png", content_type="image/png"), "empty"),
    ]
    no_file = aiohttp.FormData(default_to_multipart=True)
    no_file.add_field("note", "no file here")
    multipart.append((no_file, "no file part"))
    for multipart_body, says in multipart:
        status, body = await upload(stack, data=multipart_body)
        await check_refused(stack, tmp_path, status, body, 422, "invalid_input")
        assert body == {"error": "invalid_input", "message": body["message"], "field": "file"}
        assert says in body["message"], body


def multipart_of(chunks: AsyncIterator[bytes]) -> aiohttp.MultipartWriter:
    writer = aiohttp.MultipartWriter("form-data")
    part = writer.append_payload(payload.AsyncIterablePayload(chunks, content_type="image/png"))
    part.set_content_disposition("form-data", name="file", filename="big.png")
    return writer


async def test_over_30_mb_is_413_and_nothing_is_kept(stack: Stack, tmp_path: Path) -> None:
    over = MAX_UPLOAD_BYTES + 1
    far_over = MAX_UPLOAD_BYTES + 4 * 1024 * 1024
    attempts: list[tuple[str, Any, dict[str, str]]] = [
        # No Content-Length: the count while storing stops it.
        ("chunked", padded(PNG, over), {"Content-Type": "image/png"}),
        # One byte over a declared length: it passes the early check, the count catches it.
        ("content-length", padded(PNG, over), {"Content-Type": "image/png", "Content-Length": str(over)}),
        # Far over a declared length: refused before the body is read.
        ("declared", padded(PNG, far_over), {"Content-Type": "image/png", "Content-Length": str(far_over)}),
        ("multipart", multipart_of(padded(PNG, over)), {}),
    ]
    for how, data, headers in attempts:
        status, body = await upload(stack, data=data, headers=headers)
        await check_refused(stack, tmp_path, status, body, 413, "payload_too_large")
        expected = {"error": "payload_too_large", "message": "uploads are at most 30 MB", "field": "file"}
        assert body == expected, how


async def test_without_a_valid_api_key_it_is_401(
    stack: Stack, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    for key, message in ((None, "missing X-API-Key header"), ("", "missing"), ("not-the-key", "invalid")):
        headers = {"Content-Type": "image/png"} | ({} if key is None else {"X-API-Key": key})
        async with http.post(stack.base_url + UPLOADS, data=PNG, headers=headers) as resp:
            status, body = resp.status, await resp.json()
        await check_refused(stack, tmp_path, status, body, 401, "unauthorized")
        assert message in body["message"], (key, body)


async def test_storage_none_makes_uploads_503(
    aiohttp_server: ServerFactory,
    http: aiohttp.ClientSession,
    database_url: str,
    tmp_path: Path,
    sim: TestServer,
) -> None:
    stack = await stack_on(aiohttp_server, http, database_url, tmp_path, sim, STORAGE_URL="none")
    for data, headers in (
        (PNG, {"Content-Type": "image/png"}),
        (form(PNG, filename="photo.png", content_type="image/png"), {}),
    ):
        status, body = await upload(stack, data=data, headers=headers)
        await check_refused(stack, tmp_path, status, body, 503, "storage_unavailable")
        assert "STORAGE_URL=none" in body["message"]
    assert not (tmp_path / "data" / "files").exists()


# --- used as an input ----------------------------------------------------------------------------


async def submitted(sim: TestServer, timeout: float = 10) -> SimTask:
    """The one task KIE (the simulator) was sent, once it was sent."""
    tasks = sim.app[SIM_STATE].tasks
    deadline = time.monotonic() + timeout
    while not tasks:
        assert time.monotonic() < deadline, "the generation was never submitted to KIE"
        await asyncio.sleep(0.02)
    (task,) = tasks.values()
    return task


async def test_an_upload_is_the_input_kie_is_given_and_kie_can_fetch_it(
    stack: Stack, sim: TestServer, http: aiohttp.ClientSession
) -> None:
    model = default_catalog().get("kling-2.6/image-to-video")
    assert model.fields["image_urls"].type == "url_list"
    status, uploaded = await upload(
        stack, data=form(PNG, filename="first frame.png", content_type="image/png")
    )
    assert status == 201, uploaded

    created = await stack.create(model, {**valid_input(model), "image_urls": [uploaded["url"]]})
    task = await submitted(sim)
    assert task.model == model.id
    assert task.body["input"]["image_urls"] == [uploaded["url"]]
    row = await stack.wait_state(created["id"], {"succeeded", "failed"})
    assert row["state"] == "succeeded"

    # KIE fetches what it was given with nothing but the link: it must work for a stranger.
    status, served, headers = await fetch(http, task.body["input"]["image_urls"][0])
    assert status == 200 and served == PNG and headers["Content-Type"] == "image/png"
