"""Settings, read once from the environment into a frozen dataclass.

A bad value raises :class:`ConfigError`, whose message names the variable, the
value (masked when it may hold a secret) and what was expected; ``main`` turns
it into one line on stderr and exit code 2.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from app.config_values import (
    POSTGRES_EXPECTED,
    TELEGRAM_MODES,
    ConfigError,
    Reader,
    boolean,
    choice,
    float_in_range,
    http_url,
    id_list,
    int_in_range,
    key_list,
    lock_name,
    min_length,
    non_empty,
    postgres_url,
    seconds_list,
    storage_url,
    telegram_token,
    user_list,
    webhook_secret,
    webhook_signing_secret,
)

DEFAULT_KIE_BASE_URL = "https://api.kie.ai"
_LOG_FORMATS = ("auto", "json", "text")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    max_active_per_user: int = 2
    daily_limit: int = 0  # 0: none
    allowed_users: tuple[str, ...] = ()  # user ids and @usernames (lowercase); empty: everyone
    admin_ids: tuple[int, ...] = ()

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
class WebhookSettings:
    """Outbound webhooks to HTTP users: ``WEBHOOK_*`` variables."""

    secret: str | None = field(default=None, repr=False)  # whsec_...; None: one per API key
    allow_insecure: bool = False  # http:// webhook URLs
    allow_private: bool = False  # hosts that resolve to loopback, private, link-local or multicast
    retry_schedule: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)


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
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
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
    reader = Reader(env)

    port = reader.get("PORT", "8080", int_in_range(1, 65535), "an integer from 1 to 65535")
    host = reader.get("HOST", "0.0.0.0", non_empty, "a host name or IP address")
    database_url = reader.optional("DATABASE_URL", postgres_url, POSTGRES_EXPECTED, secret_url=True)
    lock_database_url = reader.optional("LOCK_DATABASE_URL", postgres_url, POSTGRES_EXPECTED, secret_url=True)
    data_dir = reader.get("DATA_DIR", "data", lambda v: Path(non_empty(v)), "a directory path")
    public_base_url = reader.optional(
        "PUBLIC_BASE_URL", http_url, "an http(s) URL such as https://example.com"
    )
    if public_base_url is None:
        public_base_url = reader.optional(
            "RENDER_EXTERNAL_URL", http_url, "an http(s) URL such as https://example.com"
        )
    if public_base_url is None:
        public_base_url = f"http://localhost:{port}"
    kie_api_key = reader.optional("KIE_API_KEY", non_empty, "a non-empty key", secret=True)
    kie_base_url = reader.get(
        "KIE_BASE_URL", DEFAULT_KIE_BASE_URL, http_url, "an http(s) URL such as https://api.kie.ai"
    )
    api_keys = reader.get("API_KEYS", "", key_list, "comma-separated keys", secret=True)
    telegram_bot_token = reader.optional(
        "TELEGRAM_BOT_TOKEN", telegram_token, "a bot token of the form 123456:ABC...", secret=True
    )
    kie_callback_secret = reader.optional(
        "KIE_CALLBACK_SECRET", min_length(16), "at least 16 characters", secret=True
    )
    kie_webhook_hmac_key = reader.optional("KIE_WEBHOOK_HMAC_KEY", non_empty, "a non-empty key", secret=True)
    generation_timeout_s = reader.get(
        "GENERATION_TIMEOUT_S", "900", float_in_range(1.0, 86400.0), "seconds from 1 to 86400"
    )
    kie_create_limit = reader.get(
        "KIE_CREATE_LIMIT", "20", int_in_range(1, 10_000), "an integer from 1 to 10000"
    )
    kie_create_window_s = reader.get(
        "KIE_CREATE_WINDOW_S", "10", float_in_range(0.1, 3600.0), "seconds from 0.1 to 3600"
    )
    kie_status_rps = reader.get("KIE_STATUS_RPS", "10", int_in_range(1, 10_000), "an integer from 1 to 10000")
    simulator_latency_s = reader.get(
        "SIMULATOR_LATENCY_S", "3", float_in_range(0.0, 3600.0), "seconds from 0 to 3600"
    )
    instance_id = reader.get(
        "INSTANCE_ID",
        env.get("RENDER_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}",
        non_empty,
        "a non-empty name",
    )
    leader_lock_name = reader.get(
        "LEADER_LOCK_NAME", "kie-gateway", lock_name, "1-100 letters, digits, '-', '_' or '.'"
    )
    # At most 8 s: the server drops a silent lock session after about 11 s (its TCP keepalives),
    # and an old leader must have stopped acting before a new one can start.
    leader_lease_s = reader.get("LEADER_LEASE_S", "5", float_in_range(2.0, 8.0), "seconds from 2 to 8")
    log_level = reader.get(
        "LOG_LEVEL", "INFO", choice(_LOG_LEVELS, upper=True), "one of " + ", ".join(_LOG_LEVELS)
    )
    log_format = reader.get("LOG_FORMAT", "auto", choice(_LOG_FORMATS), "one of " + ", ".join(_LOG_FORMATS))
    shutdown_timeout_s = reader.get(
        "SHUTDOWN_TIMEOUT_S", "5", float_in_range(0.5, 8.0), "seconds from 0.5 to 8"
    )
    db_pool_max_size = reader.get("DB_POOL_MAX_SIZE", "10", int_in_range(2, 200), "an integer from 2 to 200")
    db_connect_timeout_s = reader.get(
        "DB_CONNECT_TIMEOUT_S", "5", float_in_range(0.1, 60.0), "seconds from 0.1 to 60"
    )
    storage = _storage_settings(reader)
    mirror_max_bytes = reader.get(
        "MIRROR_MAX_BYTES", str(2 * 1024**3), int_in_range(1, 1024**4), "a number of bytes from 1 to 1 TiB"
    )
    mirror_timeout_s = reader.get(
        "MIRROR_TIMEOUT_S", "60", float_in_range(0.1, 3600.0), "seconds from 0.1 to 3600"
    )
    file_url_ttl_s = reader.get(
        "FILE_URL_TTL_S",
        str(7 * 24 * 3600),
        float_in_range(60.0, 366 * 24 * 3600.0),
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
                http_url,
                "an http(s) URL such as https://api.telegram.org",
            ).rstrip("/"),
            mode=reader.get("TELEGRAM_MODE", "auto", choice(TELEGRAM_MODES), "auto, webhook or polling"),
            webhook_secret=reader.optional(
                "TELEGRAM_WEBHOOK_SECRET",
                webhook_secret,
                "1 to 256 characters of A-Z, a-z, 0-9, _ and -",
                secret=True,
            ),
            default_image_model=reader.get(
                "TELEGRAM_DEFAULT_IMAGE_MODEL", "google/nano-banana", non_empty, "a model id"
            ),
            max_active_per_user=reader.get(
                "TELEGRAM_MAX_ACTIVE_PER_USER", "2", int_in_range(1, 1000), "an integer from 1 to 1000"
            ),
            daily_limit=reader.get(
                "TELEGRAM_DAILY_LIMIT", "0", int_in_range(0, 1_000_000), "an integer, 0 for no limit"
            ),
            allowed_users=reader.get(
                "TELEGRAM_ALLOWED_USERS", "", user_list, "comma-separated user ids or @usernames"
            ),
            admin_ids=reader.get("TELEGRAM_ADMIN_IDS", "", id_list, "comma-separated user ids"),
        ),
        webhooks=WebhookSettings(
            secret=reader.optional(
                "WEBHOOK_SECRET",
                webhook_signing_secret,
                "whsec_ followed by base64 of 24 to 64 bytes",
                secret=True,
            ),
            allow_insecure=reader.get("WEBHOOK_ALLOW_INSECURE", "false", boolean, "true or false"),
            allow_private=reader.get("WEBHOOK_ALLOW_PRIVATE", "false", boolean, "true or false"),
            retry_schedule=reader.get(
                "WEBHOOK_RETRY_SCHEDULE",
                "5,300,1800,7200,18000,36000,36000",
                seconds_list,
                "comma-separated seconds, e.g. 5,300,1800",
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


def _storage_settings(reader: Reader) -> StorageSettings:
    url = reader.optional("STORAGE_URL", storage_url, _STORAGE_EXPECTED)
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
            "S3_ENDPOINT_URL", http_url, "an http(s) URL such as https://s3.example.com"
        ),
        region=reader.optional("AWS_REGION", non_empty, "a region name such as us-east-1"),
        access_key_id=reader.optional("AWS_ACCESS_KEY_ID", non_empty, "a non-empty key id", secret=True),
        secret_access_key=reader.optional(
            "AWS_SECRET_ACCESS_KEY", non_empty, "a non-empty secret key", secret=True
        ),
    )


__all__ = [
    "ConfigError",
    "Settings",
    "StorageSettings",
    "TelegramSettings",
    "WebhookSettings",
    "load_settings",
]
