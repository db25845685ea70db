"""Stable 64-bit advisory-lock keys derived from names."""

from __future__ import annotations

import hashlib


def advisory_key(name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``, the same for a name on every machine."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
