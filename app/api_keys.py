"""API keys for ``/api/``: who owns a generation, and the zero-configuration key (generated once,
kept with mode 0600 under DATA_DIR)."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path


def owner_of(api_key: str) -> str:
    """The stable, non-secret owner id of an API key (the key itself is never stored)."""
    return "key:" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def load_or_create_api_key(path: Path) -> tuple[str, bool]:
    """``(key, created)``: the key stored at ``path``, or a new one written there."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= 16:
        return key, False
    path.parent.mkdir(parents=True, exist_ok=True)
    key = "kg_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key, True
