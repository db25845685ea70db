"""Process entry point: settings, logging, then the server."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from app.config import ConfigError, Settings, load_settings
from app.logs import configure_logging

if TYPE_CHECKING:
    from app.web.application import Configure


def main(configure: Configure | None = None) -> int:
    """Run the service; return the process exit code (2 for a configuration error).

    ``configure(runtime)`` may register extra singleton work once the runtime is built.
    """
    settings = settings_or_exit()
    if settings is None:
        return 2
    # Imported after configuration so a config error costs no import time.
    from app.server import serve

    return asyncio.run(serve(settings, configure))


def settings_or_exit() -> Settings | None:
    """The settings with logging configured, or None after printing the one-line configuration error."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return None
    configure_logging(settings.log_level, settings.log_format)
    return settings
