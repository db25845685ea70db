"""The store ``STORAGE_URL`` chooses: local disk (unset), S3 (``s3://bucket/prefix``) or none."""

from __future__ import annotations

from pathlib import Path

from app.config import StorageSettings
from app.storage.local import LocalStore
from app.storage.store import Store


def local_root(data_dir: Path) -> Path:
    """Where the local store keeps files: ``DATA_DIR/files``."""
    return data_dir / "files"


def open_store(settings: StorageSettings, data_dir: Path) -> Store | None:
    """The configured store, or None when storage is disabled. Connects lazily (never at startup)."""
    if settings.kind == "none":
        return None
    if settings.kind == "local":
        return LocalStore(local_root(data_dir))
    # Imported only when S3 is configured: aiobotocore is a large import.
    from app.storage.s3 import S3Store

    assert settings.bucket is not None
    return S3Store(
        settings.bucket,
        settings.prefix,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        access_key_id=settings.access_key_id,
        secret_access_key=settings.secret_access_key,
    )
