"""What one running instance is: its settings, identity and long-lived parts (built by
``app.wiring``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app import __version__
from app.callbacks.applier import CallbackApplier
from app.callbacks.intake import CallbackIntake
from app.callbacks.maintenance import CallbackMaintenance
from app.config import Settings
from app.db.database import Database
from app.db.notifications import Notifications
from app.db.settings import SharedSecret
from app.generations.events import EventHub
from app.generations.service import GenerationService
from app.health.kie import KieProbe
from app.kie.client import KieClient
from app.leader import Leader
from app.storage.parts import FileStorage
from app.storage.signing import FileLinks
from app.webhooks.delivery import WebhookDelivery
from app.webhooks.secrets import WebhookSecrets

if TYPE_CHECKING:
    from app.telegram.parts import TelegramBot


@dataclass
class Runtime:
    """The parts handlers and background work share, created once per process."""

    settings: Settings
    database: Database
    leader: Leader
    notifications: Notifications
    callback_intake: CallbackIntake
    callback_applier: CallbackApplier
    callback_maintenance: CallbackMaintenance
    callback_secret: SharedSecret
    generations: GenerationService
    kie: KieClient
    kie_probe: KieProbe
    storage: FileStorage
    api_keys: tuple[str, ...]
    fail: Callable[[BaseException], None]  # stop the process with an error (a part cannot go on)
    events: EventHub
    webhook_secrets: WebhookSecrets
    webhook_delivery: WebhookDelivery
    telegram: TelegramBot | None = None  # None: no TELEGRAM_BOT_TOKEN
    version: str = __version__

    @property
    def instance(self) -> str:
        """This instance's name in logs, health and the leadership table."""
        return self.settings.instance_id

    @property
    def file_links(self) -> FileLinks:
        """Mints and checks the signed links to our files."""
        return self.storage.links

    @property
    def role(self) -> str:
        """``starting`` (no database yet), ``passive`` or ``active``."""
        return self.leader.role
