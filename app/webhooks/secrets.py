"""Each API key's webhook signing secret: ``WEBHOOK_SECRET`` for all keys, else one generated per
key (its owner hash) and kept in the database, so every instance signs with the same secret."""

from __future__ import annotations

from app.db import webhooks as db
from app.db.database import Database
from app.webhooks.signing import new_secret


class WebhookSecrets:
    """Finds (or creates) an owner's signing secret."""

    def __init__(self, database: Database, configured: str | None) -> None:
        self._database = database
        self._configured = configured
        self._cache: dict[str, str] = {}

    async def secret_for(self, owner: str) -> str:
        """The owner's ``whsec_`` secret."""
        if self._configured is not None:
            return self._configured
        cached = self._cache.get(owner)
        if cached is None:
            cached = await db.secret_for(self._database.require_pool(), owner, new_secret())
            self._cache[owner] = cached
        return cached
