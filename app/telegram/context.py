"""What the bot's handlers share, handed to them by the dispatcher as ``ctx``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

from app.config import TelegramSettings
from app.db.database import Database
from app.generations.service import GenerationService
from app.kie.catalog import Catalog, Model
from app.kie.client import KieClient
from app.storage.signing import FileLinks
from app.storage.store import Store
from app.storage.uploads import Uploads
from app.telegram.starter import GenerationStarter

KINDS = ("image", "video", "audio")
_LISTED_UNDER = {"audio": ("audio", "text")}


@dataclass
class BotContext:
    """The parts behind the conversation."""

    settings: TelegramSettings
    database: Database
    catalog: Catalog
    generations: GenerationService
    starter: GenerationStarter
    uploads: Uploads
    links: FileLinks
    store: Store | None
    kie: KieClient | None = None

    @cached_property
    def models(self) -> list[Model]:
        """The catalog's models in a fixed order (buttons name them by position)."""
        return list(self.catalog.models())

    @cached_property
    def catalog_version(self) -> str:
        """Four characters that change when the catalog does: old buttons are then "expired"."""
        digest = hashlib.blake2b("\n".join(m.id for m in self.models).encode(), digest_size=2)
        return digest.hexdigest()

    def models_of(self, kind: str) -> list[tuple[int, Model]]:
        """(position, model) of the models listed under ``kind`` (audio tools that make text, such
        as speech to text, are listed with audio)."""
        outputs = _LISTED_UNDER.get(kind, (kind,))
        return [(index, model) for index, model in enumerate(self.models) if model.output in outputs]

    def model_at(self, version: str, index: int) -> Model | None:
        """The model a button names, or None when the button is from another catalog."""
        if version != self.catalog_version or not 0 <= index < len(self.models):
            return None
        return self.models[index]
