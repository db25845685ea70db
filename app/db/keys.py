"""Stable 64-bit advisory-lock keys derived from names."""

from __future__ import annotations

import hashlib


def advisory_key(name: str) -> int:
    """A signed 64-bit key for ``pg_advisory_lock``, the same for a name on every machine."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def task_lock_key(task_id: str) -> int:
    """The advisory-lock key that serialises decisions about one KIE task id."""
    return advisory_key(f"kie_task:{task_id}")
