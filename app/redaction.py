"""Keeping secrets out of logs, error messages and stored headers."""

from __future__ import annotations

import functools
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Keys whose values are never shown, wherever they appear (log fields, headers, query strings).
_SECRET_KEY = re.compile(r"(pass(word)?|secret|token|api[-_]?key|authorization|cookie|signature|dsn)", re.I)
# user:password@ inside any URL-looking text, e.g. in a driver's error message.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@", re.I)
# Telegram's bot URLs carry the token in the path.
_BOT_TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]{20,}")
# A secret-named query parameter inside text, e.g. our callBackUrl echoed back in KIE's `param`.
_SECRET_PARAM = re.compile(
    r"(?P<key>[?&](?:token|secret|api[_-]?key|key|signature|password)=)[^&\s\"'\\]+", re.I
)


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a field, header or parameter named ``key`` may hold a secret."""
    return bool(_SECRET_KEY.search(key))


def redact_url(url: str) -> str:
    """Return ``url`` with any password (and secret query values) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostinfo}"
    query = "&".join(_redact_query_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """Mask URL passwords and bot tokens inside free text such as exception messages."""
    # Each pattern runs only when the text holds the substring it needs: every log line with a
    # URL in it passes through here, and a substring test costs far less than a failed search.
    if "@" in text and "://" in text:
        text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(lambda m: f"{m['key']}{MASK}", text)
    if "bot" in text:
        text = _BOT_TOKEN.sub(f"bot{MASK}", text)
    return text


def _redact_query_pair(pair: str) -> str:
    key, sep, _value = pair.partition("=")
    return f"{key}={MASK}" if sep and is_secret_key(key) else pair


def describe_error(exc: BaseException) -> str:
    """A one-line, secret-free description of a failure, for health entries, logs and errors."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        text = "timed out"
    return redact_text(f"{type(exc).__name__}: {text}")[:300]
