"""Callback URLs and their verification: our per-generation URL token, the secret behind it,
and KIE's optional signature.

Each task's ``callBackUrl`` carries ``gid`` (our generation id) and ``token``
(an HMAC of it under a secret only we know). The secret is ``KIE_CALLBACK_SECRET``,
or one generated once and kept in the ``settings`` table so every instance
mints and accepts the same tokens. KIE's own signature, when the account has a
webhook key, signs the task id and a timestamp. Comparisons are constant-time.
The result is one of ``url_token``, ``kie_signature``, ``none`` or ``invalid``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode

from app.db.settings import SharedSecret
from app.kie.signature import ABSENT, INVALID, VALID, check_signature

URL_TOKEN = "url_token"  # noqa: S105 - a verification name, not a secret
KIE_SIGNATURE = "kie_signature"
NONE = "none"
INVALID_VERIFICATION = "invalid"
VERIFIED = frozenset({URL_TOKEN, KIE_SIGNATURE})
CALLBACK_PATH = "/callbacks/kie"
_SECRET_SETTING = "kie_callback_secret"  # noqa: S105 - the settings key, not the secret


def callback_secret(configured: str | None) -> SharedSecret:
    """The secret behind every callback URL token: ``KIE_CALLBACK_SECRET``, or shared through the database."""
    return SharedSecret(_SECRET_SETTING, configured)


def url_token(secret: str, generation_id: str) -> str:
    """The token that proves a callback URL was minted by us for ``generation_id``."""
    return hmac.new(secret.encode(), generation_id.encode(), hashlib.sha256).hexdigest()[:40]


def callback_url(public_base_url: str, generation_id: str, secret: str) -> str:
    """The ``callBackUrl`` to give KIE for one generation."""
    query = urlencode({"gid": generation_id, "token": url_token(secret, generation_id)})
    return f"{public_base_url.rstrip('/')}{CALLBACK_PATH}?{query}"


def verify(
    *,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    task_id: str | None,
    secret: str | None,
    hmac_key: str | None,
    now: float | None = None,
) -> tuple[str, str | None, str | None]:
    """``(verification, detail, gid)`` for one callback.

    Any credential that is present but wrong makes the callback ``invalid``; otherwise
    KIE's signature wins over our URL token, and no credential at all is ``none``.
    """
    gid = query.get("gid") or None
    token = query.get("token") or None
    url_status, url_detail = ABSENT, None
    if token or gid:
        if not (token and gid):
            url_status, url_detail = INVALID, "gid or token missing"
        elif secret is None:
            url_status, url_detail = INVALID, "callback secret not loaded"
        elif hmac.compare_digest(url_token(secret, gid).encode(), token.encode()):
            url_status = VALID
        else:
            url_status, url_detail = INVALID, "token mismatch"

    sig_status, sig_detail = (ABSENT, None)
    if hmac_key:
        sig_status, sig_detail = check_signature(hmac_key, task_id, headers, now)

    if url_status == INVALID or sig_status == INVALID:
        return INVALID_VERIFICATION, url_detail or sig_detail, gid
    if sig_status == VALID:
        return KIE_SIGNATURE, None, gid
    if url_status == VALID:
        return URL_TOKEN, None, gid
    return NONE, None, gid
