"""What file storage is made of, in one instance (built by ``app.wiring``)."""

from __future__ import annotations

from dataclasses import dataclass

from app.health.storage import StoreProbe
from app.storage.files import StoredFiles
from app.storage.mirror import Mirror
from app.storage.signing import FileLinks
from app.storage.store import Store
from app.storage.uploads import Uploads


@dataclass
class FileStorage:
    """The parts of file storage one instance holds (``store`` is None with ``STORAGE_URL=none``)."""

    store: Store | None
    links: FileLinks
    files: StoredFiles
    uploads: Uploads
    mirror: Mirror
    probe: StoreProbe

    @property
    def enabled(self) -> bool:
        """False with ``STORAGE_URL=none``."""
        return self.store is not None
