"""JSON text for jsonb and text columns: PostgreSQL rejects NUL characters in both."""

from __future__ import annotations

from typing import Any

import orjson


def to_jsonb(value: Any) -> str:
    """JSON text safe for a jsonb column (``\\u0000`` replaced)."""
    return orjson.dumps(value, default=str).decode().replace("\\u0000", "\\ufffd")


def to_text(value: str) -> str:
    """Text safe for a text column (NUL replaced)."""
    return value.replace("\x00", "\ufffd")
