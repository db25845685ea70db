"""Signed links to our files: ``{PUBLIC_BASE_URL}/files/{id}/{name}?exp=...&sig=...``.

A link works without an API key until ``exp`` (Unix seconds), so a browser, Telegram or KIE can
fetch it. The signature is an HMAC-SHA256 of the path and the expiry under a secret every
instance shares (kept in the ``settings`` table); comparisons are constant-time. Expiries are
rounded up to the hour, so the links handed out within an hour are the same (and cacheable).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from urllib.parse import quote, urlencode

from app.db.settings import SharedSecret

FILES_PREFIX = "/files"
FILE_LINK_SECRET = "file_link_secret"  # noqa: S105 - the settings key, not the secret
_ROUND_S = 3600


def signature(secret: str, object_id: str, name: str, expires: int) -> str:
    """The ``sig`` of a link to ``/files/{object_id}/{name}`` valid until ``expires``."""
    message = f"{object_id}/{name}\n{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class FileLinks:
    """Mints and checks the signed links to ``/files/...``."""

    def __init__(self, public_base_url: str, secret: SharedSecret, ttl_s: float) -> None:
        self._base = public_base_url.rstrip("/")
        self.secret = secret
        self.ttl_s = ttl_s

    def url(self, object_id: str, name: str, *, now: float | None = None) -> str:
        """A link valid for at least ``FILE_URL_TTL_S``; the secret must be loaded."""
        secret = self.secret.value
        if secret is None:
            raise RuntimeError("the file-link secret is not loaded yet")
        moment = time.time() if now is None else now
        expires = int(math.ceil((moment + self.ttl_s) / _ROUND_S) * _ROUND_S)
        query = urlencode({"exp": expires, "sig": signature(secret, object_id, name, expires)})
        return f"{self._base}{FILES_PREFIX}/{quote(object_id)}/{quote(name)}?{query}"

    def check(
        self, object_id: str, name: str, exp: str | None, sig: str | None, *, now: float | None = None
    ) -> str | None:
        """None when the link is valid; else why not: ``missing``, ``invalid`` or ``expired``."""
        secret = self.secret.value
        if not exp or not sig:
            return "missing"
        if secret is None:
            return "invalid"
        try:
            expires = int(exp)
        except ValueError:
            return "invalid"
        expected = signature(secret, object_id, name, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode("utf-8", "surrogateescape")):
            return "invalid"
        if expires < (time.time() if now is None else now):
            return "expired"
        return None

    def expires_in(self, exp: str | None, *, now: float | None = None) -> float:
        """Seconds until a (valid) link's expiry."""
        try:
            return max(0.0, int(exp or 0) - (time.time() if now is None else now))
        except ValueError:
            return 0.0
