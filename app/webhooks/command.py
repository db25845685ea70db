"""``python -m app webhook-secret``: print the secret an API key's webhooks are signed with."""

from __future__ import annotations

import sys

from app.api_keys import owner_of
from app.config import Settings
from app.webhooks.secrets import WebhookSecrets

_READY_TIMEOUT_S = 60.0


async def webhook_secret_command(settings: Settings, api_key: str | None) -> int:
    """Print the secret; the process exit code."""
    key = api_key or (settings.api_keys[0] if settings.api_keys else _generated_key(settings))
    if key is None:
        print("webhook-secret: no API key (give --api-key, or set API_KEYS)", file=sys.stderr)
        return 2
    if settings.webhooks.secret is not None:
        print(settings.webhooks.secret)
        return 0
    from app.wiring import make_database  # built the way the service builds it

    database = make_database(settings)
    database.start()
    try:
        if not await database.wait_ready(_READY_TIMEOUT_S):
            print(
                f"webhook-secret: the database was not reachable within {_READY_TIMEOUT_S:.0f} s",
                file=sys.stderr,
            )
            return 1
        print(await WebhookSecrets(database, None).secret_for(owner_of(key)))
        return 0
    finally:
        await database.close()


def _generated_key(settings: Settings) -> str | None:
    path = settings.data_dir / "api_key"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
