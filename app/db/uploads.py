"""SQL of the ``uploads`` table: files people uploaded (inputs for image-to-video and edits)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from app.db.connection import Executor

_INSERT = """
INSERT INTO uploads (id, owner, name, content_type, bytes, sha256) VALUES ($1, $2, $3, $4, $5, $6)
RETURNING created_at
"""
_GET = "SELECT id, owner, name, content_type, bytes, sha256, created_at FROM uploads WHERE id = $1"


@dataclass(frozen=True, slots=True)
class Upload:
    """One uploaded file."""

    id: uuid.UUID
    owner: str
    name: str
    content_type: str
    bytes: int
    sha256: str
    created_at: datetime


async def insert(
    conn: Executor,
    *,
    upload_id: uuid.UUID,
    owner: str,
    name: str,
    content_type: str,
    size: int,
    sha256: str,
) -> Upload:
    """Record an upload whose bytes are already in the store."""
    created_at = await conn.fetchval(_INSERT, upload_id, owner, name, content_type, size, sha256)
    return Upload(upload_id, owner, name, content_type, size, sha256, created_at)


async def get(conn: Executor, upload_id: uuid.UUID) -> Upload | None:
    """The upload, or None."""
    row = await conn.fetchrow(_GET, upload_id)
    if row is None:
        return None
    return Upload(
        row["id"],
        row["owner"],
        row["name"],
        row["content_type"],
        row["bytes"],
        row["sha256"],
        row["created_at"],
    )
