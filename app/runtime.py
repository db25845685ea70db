"""What one running instance is: its settings, identity and long-lived parts."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from app import __version__
from app.config import Settings
from app.db.database import Database
from app.db.notifications import Notifications
from app.kie.client import KieClient
from app.leader import Leader
from app.services.callback_intake import CallbackIntake
from app.services.generation_service import GenerationService
from app.services.kie_health import KieHealth
from app.services.storage_probe import StorageProbe


@dataclass
class Runtime:
    """The parts handlers and background work share, created once per process."""

    settings: Settings
    database: Database
    leader: Leader
    callbacks: CallbackIntake
    storage: StorageProbe
    notifications: Notifications
    generations: GenerationService
    kie: KieClient
    kie_health: KieHealth
    api_keys: tuple[str, ...]
    version: str = __version__
    started_at: float = field(default_factory=time.time)
    # Set when a background part fails in a way the process cannot recover from.
    fatal: asyncio.Future[BaseException] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def __post_init__(self) -> None:
        self.database.on_fatal = self.fail

    @property
    def instance(self) -> str:
        """This instance's name in logs, health and the leadership table."""
        return self.settings.instance_id

    @property
    def role(self) -> str:
        """``starting`` (no database yet), ``passive`` or ``active``."""
        return self.leader.role

    def fail(self, exc: BaseException) -> None:
        """Ask the process to stop with an error: a background part cannot go on."""
        if not self.fatal.done():
            self.fatal.set_result(exc)
