"""POST /api/v1/uploads: a file (multipart, or the raw body with its content type) becomes a
signed link to our copy, usable in ``input.image_urls`` and the like. 201 with the link; 413 over
30 MB; 422 for anything but an image, a video or an audio file."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from app.db.database import DatabaseUnavailable
from app.storage.store import StorageError
from app.storage.uploads import MAX_UPLOAD_BYTES, StorageDisabled, UploadRejected
from app.web.auth import OWNER
from app.web.errors import json_error
from app.web.keys import runtime_of

_CHUNK = 256 * 1024


async def create_upload(request: web.Request) -> web.Response:
    """Store one uploaded file; 201 ``{url, name, content_type, bytes, sha256}``."""
    if request.content_length is not None and request.content_length > MAX_UPLOAD_BYTES + 64 * 1024:
        return _too_large()
    filename: str | None = None
    if request.content_type.startswith("multipart/"):
        try:
            part = await _first_file(request)
        except (BadHttpMessage, ValueError) as exc:  # a part whose headers are not HTTP headers
            return json_error(422, "invalid_input", f"the multipart body is malformed: {exc}", field="file")
        if part is None:
            return json_error(422, "invalid_input", "the multipart body holds no file part", field="file")
        declared, filename = part.headers.get("Content-Type"), part.filename
        chunks = _part_chunks(part)
    else:
        declared = request.headers.get("Content-Type")
        chunks = request.content.iter_chunked(_CHUNK)
    try:
        uploaded = await runtime_of(request.app).storage.uploads.save(
            owner=request[OWNER], chunks=chunks, declared_type=declared, filename=filename
        )
    except UploadRejected as exc:
        if exc.status == 413:
            return _too_large()
        return json_error(exc.status, "invalid_input", exc.message, field="file")
    except StorageDisabled as exc:
        return json_error(503, "storage_unavailable", str(exc))
    except StorageError as exc:
        return json_error(
            503, "storage_unavailable", f"file storage failed: {exc}", headers={"Retry-After": "30"}
        )
    except DatabaseUnavailable:
        return json_error(503, "unavailable", "the database is not reachable yet; retry shortly")
    upload = uploaded.upload
    body = {
        "url": uploaded.url,
        "name": upload.name,
        "content_type": upload.content_type,
        "bytes": upload.bytes,
        "sha256": upload.sha256,
    }
    return web.json_response(body, status=201)


async def _first_file(request: web.Request) -> BodyPartReader | None:
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and (part.filename or part.name == "file"):
            return part
        if isinstance(part, BodyPartReader):
            await part.release()  # a text field: skipped
    return None


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(_CHUNK):
        yield chunk


def _too_large() -> web.Response:
    return json_error(
        413, "payload_too_large", f"uploads are at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB", field="file"
    )
