"""GET and HEAD /files/{id}/{name}: our copies of results and uploads, by signed link.

A valid ``exp``/``sig`` pair opens a file without an API key (browsers, Telegram, KIE); the
owner's ``X-API-Key`` opens it without one. Storage that is disabled or unreachable is a 503
before anything else is looked at; a bad or expired link is a 403; an unknown file a 404.
Range requests, ``ETag`` (the sha256), ``Content-Length``, ``Content-Type`` and ``Cache-Control``
as browsers and media players expect. Files are streamed from the store, never held in memory.
"""

from __future__ import annotations

from aiohttp import web

from app.db.database import DatabaseUnavailable
from app.storage.store import ObjectMissing, StorageError
from app.web.auth import OWNER, authenticate
from app.web.errors import json_error
from app.web.keys import runtime_of
from app.web.params import not_found, path_uuid

_MAX_AGE_S = 24 * 3600


async def serve_file(request: web.Request) -> web.StreamResponse:
    """Stream one stored file (or answer its headers, for HEAD)."""
    runtime = runtime_of(request.app)
    storage = runtime.storage
    store = storage.store
    if store is None:
        return _unavailable("file storage is disabled (STORAGE_URL=none)")
    health = await storage.probe.health()
    if health.status == "down":
        return _unavailable(f"file storage is unreachable: {health.last_error}")
    object_id, name = path_uuid(request, what="file"), request.match_info["name"]
    owner = None
    if "X-API-Key" in request.headers:
        denied = authenticate(request, runtime.api_keys)
        if denied is not None:
            return denied
        owner = request[OWNER]
        max_age = 0
    else:
        exp, sig = request.query.get("exp"), request.query.get("sig")
        problem = storage.links.check(str(object_id), name, exp, sig)
        if problem is not None:
            return json_error(403, "forbidden", f"the link is {problem}: ask for a fresh one", reason=problem)
        max_age = int(min(_MAX_AGE_S, storage.links.expires_in(exp)))
    try:
        found = await storage.files.find(object_id, name)
    except DatabaseUnavailable:
        return json_error(503, "unavailable", "the database is not reachable yet; retry shortly")
    if found is None or (owner is not None and found.owner != owner):
        return not_found("file")
    etag = f'"{found.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": f"private, max-age={max_age}, immutable" if max_age else "private, no-cache",
        "Content-Type": found.content_type,
        # Served from our own domain: never let a browser run or reinterpret what a file holds.
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    try:
        byte_range = request.http_range
    except ValueError:
        byte_range = slice(None, None)  # a malformed Range header is ignored, as RFC 9110 allows
    start, end = _bounds(byte_range, found.bytes)
    if start is None:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{found.bytes}"})
    partial = (start, end) != (0, found.bytes - 1)
    response = web.StreamResponse(status=206 if partial else 200, headers=headers)
    response.content_length = max(0, end - start + 1)
    if partial:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{found.bytes}"
    if request.method == "HEAD" or found.bytes == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    try:
        reader = await store.open(found.key, start=start, end=end)
    except ObjectMissing:
        return not_found("file")
    except StorageError as exc:
        return _unavailable(f"file storage failed: {exc}")
    try:
        await response.prepare(request)
        async for chunk in reader.chunks:
            await response.write(chunk)
    finally:
        await reader.aclose()
    await response.write_eof()
    return response


def _bounds(byte_range: slice, size: int) -> tuple[int | None, int]:
    """``(first, last)`` byte of the requested range; first is None when it cannot be satisfied."""
    start, stop = byte_range.start, byte_range.stop
    if start is None and stop is None:
        return 0, size - 1
    if start is not None and start < 0:  # "bytes=-N": the last N bytes
        return max(0, size + start), size - 1
    first = start or 0
    last = size - 1 if stop is None else min(stop - 1, size - 1)
    if first >= size or last < first:
        return None, 0
    return first, last


def _unavailable(message: str) -> web.Response:
    return json_error(503, "storage_unavailable", message, headers={"Retry-After": "30"})
