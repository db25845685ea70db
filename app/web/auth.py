"""API keys for /api/: ``X-API-Key`` must be one of the configured keys.

The owner of a generation is a hash of the key that created it, so the key
itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from app.web.errors import json_error
from app.web.keys import RUNTIME

OWNER = web.RequestKey("owner", str)
API_PREFIX = "/api/"


def owner_of(api_key: str) -> str:
    """The stable, non-secret owner id of an API key."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def authenticate(request: web.Request) -> web.Response | None:
    """A 401 JSON answer unless an /api/ request carries a valid key; None lets it through.

    Called by the request middleware for every path under /api/, so a new API route is
    protected without anyone remembering to.
    """
    given = request.headers.get("X-API-Key", "")
    keys = request.app[RUNTIME].api_keys
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
