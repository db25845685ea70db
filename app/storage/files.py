"""Our stored files as the ``/files/{id}/{name}`` links name them: a generation's mirrored results
or an upload, with who owns them and what they are."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.db import generations as generations_db
from app.db import uploads as uploads_db
from app.db.database import Database


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file we keep: its storage key, owner and metadata (recorded when it was stored)."""

    object_id: uuid.UUID
    name: str
    owner: str
    content_type: str
    bytes: int
    sha256: str

    @property
    def key(self) -> str:
        """Where the store keeps it: ``<id>/<name>``."""
        return f"{self.object_id}/{self.name}"


class StoredFiles:
    """Finds the file a link names."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def find(self, object_id: uuid.UUID, name: str) -> StoredFile | None:
        """The generation result or upload called ``name`` under ``object_id``, or None."""
        pool = self._database.require_pool()
        generation = await generations_db.get_generation(pool, object_id)
        if generation is not None:
            for entry in generation.files or []:
                if entry.get("name") == name:
                    return StoredFile(
                        object_id,
                        name,
                        generation.owner,
                        str(entry.get("content_type") or "application/octet-stream"),
                        int(entry.get("bytes") or 0),
                        str(entry.get("sha256") or ""),
                    )
            return None
        upload = await uploads_db.get(pool, object_id)
        if upload is None or upload.name != name:
            return None
        return StoredFile(object_id, name, upload.owner, upload.content_type, upload.bytes, upload.sha256)
