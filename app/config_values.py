"""Reading environment variables: one variable at a time, each parsed and checked, a failure
turned into a :class:`ConfigError` that names the variable and what was expected."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from app.redaction import redact_url

T = TypeVar("T")

_POSTGRES_SCHEMES = ("postgres", "postgresql")
TELEGRAM_MODES = ("auto", "webhook", "polling")


class ConfigError(Exception):
    """A configuration variable holds a value the service cannot use."""

    def __init__(self, variable: str, shown_value: str, expected: str) -> None:
        self.variable = variable
        self.shown_value = shown_value
        self.expected = expected
        super().__init__(f"{variable}={shown_value} is invalid: expected {expected}")


POSTGRES_EXPECTED = "a PostgreSQL URL such as postgresql://user:password@host:5432/dbname"


class Reader:
    """Reads one variable at a time and turns a parse failure into a ConfigError."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(
        self,
        name: str,
        default: str,
        parse: Callable[[str], T],
        expected: str,
        *,
        secret: bool = False,
        secret_url: bool = False,
    ) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            raw = default
        return self._parse(name, raw.strip(), parse, expected, secret, secret_url)

    def optional(
        self,
        name: str,
        parse: Callable[[str], T],
        expected: str,
        *,
        secret: bool = False,
        secret_url: bool = False,
    ) -> T | None:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return None
        return self._parse(name, raw.strip(), parse, expected, secret, secret_url)

    @staticmethod
    def _parse(
        name: str,
        raw: str,
        parse: Callable[[str], T],
        expected: str,
        secret: bool,
        secret_url: bool,
    ) -> T:
        try:
            return parse(raw)
        except (ValueError, TypeError):
            if secret:
                shown = "<redacted>"
            elif secret_url:
                shown = repr(redact_url(raw))
            else:
                shown = repr(raw)
            raise ConfigError(name, shown, expected) from None


def non_empty(value: str) -> str:
    """Any text but blank."""
    if not value:
        raise ValueError("empty")
    return value


def min_length(length: int) -> Callable[[str], str]:
    """Text of at least ``length`` characters."""

    def parse(value: str) -> str:
        if len(value) < length:
            raise ValueError("too short")
        return value

    return parse


def int_in_range(low: int, high: int) -> Callable[[str], int]:
    """An integer from ``low`` to ``high``."""

    def parse(value: str) -> int:
        number = int(value, 10)
        if not low <= number <= high:
            raise ValueError("out of range")
        return number

    return parse


def float_in_range(low: float, high: float) -> Callable[[str], float]:
    """A number from ``low`` to ``high``."""

    def parse(value: str) -> float:
        number = float(value)
        if not low <= number <= high:  # also rejects NaN
            raise ValueError("out of range")
        return number

    return parse


def choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    """One of ``options`` (case-insensitive)."""

    def parse(value: str) -> str:
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise ValueError("not an option")
        return value

    return parse


def postgres_url(value: str) -> str:
    """A postgres:// or postgresql:// URL with a database name."""
    parts = urlsplit(value)
    if parts.scheme not in _POSTGRES_SCHEMES:
        raise ValueError("not a postgres URL")
    # A unix-socket URL (postgresql://user@/db?host=/run/pg) has no netloc host but names one in the query.
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("no host")
    if parts.port is None and parts.netloc.endswith(":"):
        raise ValueError("empty port")
    return value


def http_url(value: str) -> str:
    """An http(s) URL with a host and no query or fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http URL")
    return value


def key_list(value: str) -> tuple[str, ...]:
    """Comma-separated API keys of 8 characters or more."""
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if any(len(key) < 8 for key in keys):
        raise ValueError("key too short")
    return keys


def storage_url(value: str) -> str:
    """``none`` or ``s3://bucket/optional/prefix``."""
    if value.lower() == "none":
        return "none"
    parts = urlsplit(value)
    # S3 bucket names: 3-63 of lower-case letters, digits, dots and hyphens.
    if parts.scheme != "s3" or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc or ""):
        raise ValueError("not a storage URL")
    if parts.query or parts.fragment:
        raise ValueError("no query or fragment")
    return value


def lock_name(value: str) -> str:
    """A leader lock name: 1-100 letters, digits, ``-``, ``_`` or ``.``."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value):
        raise ValueError("bad lock name")
    return value


def user_list(value: str) -> tuple[str, ...]:
    """Comma-separated Telegram user ids or @usernames (lowercased)."""
    users = tuple(item.strip().lower() for item in value.split(",") if item.strip())
    for user in users:
        if not (user.isdigit() or re.fullmatch(r"@[a-z0-9_]{3,32}", user)):
            raise ValueError("not a user id or @username")
    return users


def id_list(value: str) -> tuple[int, ...]:
    """Comma-separated Telegram user ids."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not all(item.isdigit() for item in items):
        raise ValueError("not a user id")
    return tuple(int(item) for item in items)


def webhook_secret(value: str) -> str:
    """A Telegram webhook secret_token: 1-256 of ``A-Za-z0-9_-``."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
        raise ValueError("bad secret token")
    return value


def telegram_token(value: str) -> str:
    """A bot token: digits, a colon, 20 or more characters."""
    bot_id, sep, secret = value.partition(":")
    if not sep or not bot_id.isdigit() or len(secret) < 20:
        raise ValueError("not a bot token")
    return value


def boolean(value: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off)."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ValueError("not a boolean")


def seconds_list(value: str) -> tuple[float, ...]:
    """Comma-separated non-negative seconds (at least one, at most 50)."""
    items = tuple(float(item) for item in value.split(",") if item.strip())
    if not 1 <= len(items) <= 50 or any(item < 0 or item > 7 * 24 * 3600 for item in items):
        raise ValueError("bad schedule")
    return items


def webhook_signing_secret(value: str) -> str:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 24 to 64 random bytes."""
    if not value.startswith("whsec_"):
        raise ValueError("no whsec_ prefix")
    try:
        key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("bad key length")
    return value
