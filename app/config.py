"""Settings, read once from the environment into a frozen dataclass.

A bad value raises :class:`ConfigError`, whose message names the variable, the
value (masked when it may hold a secret) and what was expected; ``main`` turns
it into one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from app.redaction import redact_url

T = TypeVar("T")

DEFAULT_KIE_BASE_URL = "https://api.kie.ai"
_POSTGRES_SCHEMES = ("postgres", "postgresql")
_LOG_FORMATS = ("auto", "json", "text")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(Exception):
    """A configuration variable holds a value the service cannot use."""

    def __init__(self, variable: str, shown_value: str, expected: str) -> None:
        self.variable = variable
        self.shown_value = shown_value
        self.expected = expected
        super().__init__(f"{variable}={shown_value} is invalid: expected {expected}")


@dataclass(frozen=True)
class StorageSettings:
    """Where result files and uploads are kept: ``STORAGE_URL`` and the standard ``AWS_*`` variables."""

    kind: str  # "local" (DATA_DIR/files), "s3" or "none" (mirroring disabled)
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)

    @property
    def enabled(self) -> bool:
        """False when ``STORAGE_URL=none``."""
        return self.kind != "none"


@dataclass(frozen=True)
class TelegramSettings:
    """The bot: ``TELEGRAM_*`` variables (the bot is off without a token)."""

    token: str | None = field(default=None, repr=False)
    api_base: str = "https://api.telegram.org"
    mode: str = "auto"  # auto, webhook or polling
    webhook_secret: str | None = field(default=None, repr=False)  # None: derived from the token
    default_image_model: str = "google/nano-banana"

    @property
    def enabled(self) -> bool:
        """True when a bot token is configured."""
        return self.token is not None

    def resolved_mode(self, public_base_url: str) -> str:
        """``webhook`` or ``polling``: ``auto`` is a webhook when the public URL is https."""
        if self.mode != "auto":
            return self.mode
        return "webhook" if public_base_url.startswith("https://") else "polling"


@dataclass(frozen=True)
class Settings:
    """Every setting the service reads from its environment."""

    port: int = 8080
    host: str = "0.0.0.0"
    database_url: str | None = None
    lock_database_url: str | None = None
    data_dir: Path = Path("data")
    public_base_url: str = "http://localhost:8080"
    kie_api_key: str | None = field(default=None, repr=False)
    kie_base_url: str = DEFAULT_KIE_BASE_URL
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    kie_callback_secret: str | None = field(default=None, repr=False)
    kie_webhook_hmac_key: str | None = field(default=None, repr=False)
    instance_id: str = "local"
    generation_timeout_s: float = 900.0
    kie_create_limit: int = 20
    kie_create_window_s: float = 10.0
    kie_status_rps: int = 10
    simulator_latency_s: float = 3.0
    leader_lock_name: str = "kie-gateway"
    leader_lease_s: float = 5.0
    log_level: str = "INFO"
    log_format: str = "auto"
    shutdown_timeout_s: float = 5.0
    db_pool_max_size: int = 10
    db_connect_timeout_s: float = 5.0
    storage: StorageSettings = field(default_factory=lambda: StorageSettings("local"))
    mirror_max_bytes: int = 2 * 1024**3
    mirror_timeout_s: float = 60.0
    file_url_ttl_s: float = 7 * 24 * 3600.0
    on_render: bool = False  # RENDER=true (set by Render on every service)

    @property
    def embedded_database(self) -> bool:
        """True when no DATABASE_URL is given and we run our own PostgreSQL."""
        return self.database_url is None

    @property
    def kie_simulated(self) -> bool:
        """True when no KIE key is configured and the built-in simulator stands in."""
        return self.kie_api_key is None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    reader = _Reader(env)

    port = reader.get("PORT", "8080", _int_in_range(1, 65535), "an integer from 1 to 65535")
    host = reader.get("HOST", "0.0.0.0", _non_empty, "a host name or IP address")
    database_url = reader.optional("DATABASE_URL", _postgres_url, _POSTGRES_EXPECTED, secret_url=True)
    lock_database_url = reader.optional(
        "LOCK_DATABASE_URL", _postgres_url, _POSTGRES_EXPECTED, secret_url=True
    )
    data_dir = reader.get("DATA_DIR", "data", lambda v: Path(_non_empty(v)), "a directory path")
    public_base_url = reader.optional(
        "PUBLIC_BASE_URL", _http_url, "an http(s) URL such as https://example.com"
    )
    if public_base_url is None:
        public_base_url = reader.optional(
            "RENDER_EXTERNAL_URL", _http_url, "an http(s) URL such as https://example.com"
        )
    if public_base_url is None:
        public_base_url = f"http://localhost:{port}"
    kie_api_key = reader.optional("KIE_API_KEY", _non_empty, "a non-empty key", secret=True)
    kie_base_url = reader.get(
        "KIE_BASE_URL", DEFAULT_KIE_BASE_URL, _http_url, "an http(s) URL such as https://api.kie.ai"
    )
    api_keys = reader.get("API_KEYS", "", _key_list, "comma-separated keys", secret=True)
    telegram_bot_token = reader.optional(
        "TELEGRAM_BOT_TOKEN", _telegram_token, "a bot token of the form 123456:ABC...", secret=True
    )
    kie_callback_secret = reader.optional(
        "KIE_CALLBACK_SECRET", _min_length(16), "at least 16 characters", secret=True
    )
    kie_webhook_hmac_key = reader.optional("KIE_WEBHOOK_HMAC_KEY", _non_empty, "a non-empty key", secret=True)
    generation_timeout_s = reader.get(
        "GENERATION_TIMEOUT_S", "900", _float_in_range(1.0, 86400.0), "seconds from 1 to 86400"
    )
    kie_create_limit = reader.get(
        "KIE_CREATE_LIMIT", "20", _int_in_range(1, 10_000), "an integer from 1 to 10000"
    )
    kie_create_window_s = reader.get(
        "KIE_CREATE_WINDOW_S", "10", _float_in_range(0.1, 3600.0), "seconds from 0.1 to 3600"
    )
    kie_status_rps = reader.get(
        "KIE_STATUS_RPS", "10", _int_in_range(1, 10_000), "an integer from 1 to 10000"
    )
    simulator_latency_s = reader.get(
        "SIMULATOR_LATENCY_S", "3", _float_in_range(0.0, 3600.0), "seconds from 0 to 3600"
    )
    instance_id = reader.get(
        "INSTANCE_ID",
        env.get("RENDER_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}",
        _non_empty,
        "a non-empty name",
    )
    leader_lock_name = reader.get(
        "LEADER_LOCK_NAME", "kie-gateway", _lock_name, "1-100 letters, digits, '-', '_' or '.'"
    )
    # At most 8 s: the server drops a silent lock session after about 11 s (its TCP keepalives),
    # and an old leader must have stopped acting before a new one can start.
    leader_lease_s = reader.get("LEADER_LEASE_S", "5", _float_in_range(2.0, 8.0), "seconds from 2 to 8")
    log_level = reader.get(
        "LOG_LEVEL", "INFO", _choice(_LOG_LEVELS, upper=True), "one of " + ", ".join(_LOG_LEVELS)
    )
    log_format = reader.get("LOG_FORMAT", "auto", _choice(_LOG_FORMATS), "one of " + ", ".join(_LOG_FORMATS))
    shutdown_timeout_s = reader.get(
        "SHUTDOWN_TIMEOUT_S", "5", _float_in_range(0.5, 8.0), "seconds from 0.5 to 8"
    )
    db_pool_max_size = reader.get("DB_POOL_MAX_SIZE", "10", _int_in_range(2, 200), "an integer from 2 to 200")
    db_connect_timeout_s = reader.get(
        "DB_CONNECT_TIMEOUT_S", "5", _float_in_range(0.1, 60.0), "seconds from 0.1 to 60"
    )
    storage = _storage_settings(reader)
    mirror_max_bytes = reader.get(
        "MIRROR_MAX_BYTES", str(2 * 1024**3), _int_in_range(1, 1024**4), "a number of bytes from 1 to 1 TiB"
    )
    mirror_timeout_s = reader.get(
        "MIRROR_TIMEOUT_S", "60", _float_in_range(0.1, 3600.0), "seconds from 0.1 to 3600"
    )
    file_url_ttl_s = reader.get(
        "FILE_URL_TTL_S",
        str(7 * 24 * 3600),
        _float_in_range(60.0, 366 * 24 * 3600.0),
        "seconds from 60 to a year",
    )

    return Settings(
        port=port,
        host=host,
        database_url=database_url,
        lock_database_url=lock_database_url,
        data_dir=data_dir,
        public_base_url=public_base_url.rstrip("/"),
        kie_api_key=kie_api_key,
        kie_base_url=kie_base_url.rstrip("/"),
        api_keys=api_keys,
        telegram_bot_token=telegram_bot_token,
        telegram=TelegramSettings(
            token=telegram_bot_token,
            api_base=reader.get(
                "TELEGRAM_API_BASE",
                "https://api.telegram.org",
                _http_url,
                "an http(s) URL such as https://api.telegram.org",
            ).rstrip("/"),
            mode=reader.get("TELEGRAM_MODE", "auto", _choice(_TELEGRAM_MODES), "auto, webhook or polling"),
            webhook_secret=reader.optional(
                "TELEGRAM_WEBHOOK_SECRET",
                _webhook_secret,
                "1 to 256 characters of A-Z, a-z, 0-9, _ and -",
                secret=True,
            ),
            default_image_model=reader.get(
                "TELEGRAM_DEFAULT_IMAGE_MODEL", "google/nano-banana", _non_empty, "a model id"
            ),
        ),
        kie_callback_secret=kie_callback_secret,
        kie_webhook_hmac_key=kie_webhook_hmac_key,
        instance_id=instance_id,
        generation_timeout_s=generation_timeout_s,
        kie_create_limit=kie_create_limit,
        kie_create_window_s=kie_create_window_s,
        kie_status_rps=kie_status_rps,
        simulator_latency_s=simulator_latency_s,
        leader_lock_name=leader_lock_name,
        leader_lease_s=leader_lease_s,
        log_level=log_level,
        log_format=log_format,
        shutdown_timeout_s=shutdown_timeout_s,
        db_pool_max_size=db_pool_max_size,
        db_connect_timeout_s=db_connect_timeout_s,
        storage=storage,
        mirror_max_bytes=mirror_max_bytes,
        mirror_timeout_s=mirror_timeout_s,
        file_url_ttl_s=file_url_ttl_s,
        on_render=env.get("RENDER", "").lower() == "true" or bool(env.get("RENDER_SERVICE_ID")),
    )


_STORAGE_EXPECTED = "unset (local disk under DATA_DIR/files), none, or s3://bucket/optional/prefix"


def _storage_settings(reader: _Reader) -> StorageSettings:
    url = reader.optional("STORAGE_URL", _storage_url, _STORAGE_EXPECTED)
    if url is None:
        return StorageSettings("local")
    if url == "none":
        return StorageSettings("none")
    parts = urlsplit(url)
    return StorageSettings(
        "s3",
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint_url=reader.optional(
            "S3_ENDPOINT_URL", _http_url, "an http(s) URL such as https://s3.example.com"
        ),
        region=reader.optional("AWS_REGION", _non_empty, "a region name such as us-east-1"),
        access_key_id=reader.optional("AWS_ACCESS_KEY_ID", _non_empty, "a non-empty key id", secret=True),
        secret_access_key=reader.optional(
            "AWS_SECRET_ACCESS_KEY", _non_empty, "a non-empty secret key", secret=True
        ),
    )


_POSTGRES_EXPECTED = "a PostgreSQL URL such as postgresql://user:password@host:5432/dbname"


class _Reader:
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


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("empty")
    return value


def _min_length(length: int) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if len(value) < length:
            raise ValueError("too short")
        return value

    return parse


def _int_in_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value, 10)
        if not low <= number <= high:
            raise ValueError("out of range")
        return number

    return parse


def _float_in_range(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        number = float(value)
        if not low <= number <= high:  # also rejects NaN
            raise ValueError("out of range")
        return number

    return parse


def _choice(options: tuple[str, ...], *, upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.upper() if upper else value.lower()
        if value not in options:
            raise ValueError("not an option")
        return value

    return parse


def _postgres_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in _POSTGRES_SCHEMES:
        raise ValueError("not a postgres URL")
    # A unix-socket URL (postgresql://user@/db?host=/run/pg) has no netloc host but names one in the query.
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("no host")
    if parts.port is None and parts.netloc.endswith(":"):
        raise ValueError("empty port")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http URL")
    return value


def _key_list(value: str) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in value.split(",") if key.strip())
    if any(len(key) < 8 for key in keys):
        raise ValueError("key too short")
    return keys


def _storage_url(value: str) -> str:
    if value.lower() == "none":
        return "none"
    parts = urlsplit(value)
    # S3 bucket names: 3-63 of lower-case letters, digits, dots and hyphens.
    if parts.scheme != "s3" or not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc or ""):
        raise ValueError("not a storage URL")
    if parts.query or parts.fragment:
        raise ValueError("no query or fragment")
    return value


def _lock_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", value):
        raise ValueError("bad lock name")
    return value


_TELEGRAM_MODES = ("auto", "webhook", "polling")


def _webhook_secret(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value):
        raise ValueError("bad secret token")
    return value


def _telegram_token(value: str) -> str:
    bot_id, sep, secret = value.partition(":")
    if not sep or not bot_id.isdigit() or len(secret) < 20:
        raise ValueError("not a bot token")
    return value
