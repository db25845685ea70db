"""API keys for ``/api/``: ``X-API-Key`` must be one of the configured keys.

The owner of a generation is a hash of the key that created it (``app.api_keys.owner_of``), so
the key itself is never stored.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web

from app.api_keys import owner_of
from app.web.errors import json_error

OWNER = web.RequestKey("owner", str)
QUERY_KEY_PATHS = frozenset({"/api/v1/ws"})


def authenticate(request: web.Request, keys: Sequence[str]) -> web.Response | None:
    """A 401 JSON answer unless the request carries one of ``keys``; None lets it through.

    On success the request's owner (``request[OWNER]``) is set.
    """
    given = request.headers.get("X-API-Key", "")
    if not given and request.path in QUERY_KEY_PATHS:
        # Browsers cannot set headers on a WebSocket: there the key may come as ?key=.
        given = request.query.get("key", "")
    if not given:
        return json_error(401, "unauthorized", "missing X-API-Key header")
    # Compare against every key in constant time, so timing reveals nothing about any of them.
    # Header bytes that are not UTF-8 arrive as surrogates: encode them back instead of failing.
    given_bytes = given.encode("utf-8", "surrogateescape")
    matched = [key for key in keys if hmac.compare_digest(key.encode(), given_bytes)]
    if not matched:
        return json_error(401, "unauthorized", "invalid API key")
    request[OWNER] = owner_of(matched[0])
    return None
