"""KIE's optional webhook signature: HMAC-SHA256 over ``taskId + "." + timestamp``.

With a ``webhookHmacKey`` set in the KIE account, every callback carries
``X-Webhook-Timestamp`` (Unix seconds) and ``X-Webhook-Signature`` (base64 of
the HMAC). Only the task id and the timestamp are signed, not the body.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Webhook-Timestamp"
SIGNATURE_HEADER = "X-Webhook-Signature"
MAX_SKEW_S = 300

VALID = "valid"
INVALID = "invalid"
ABSENT = "absent"


def sign(key: str, task_id: str, timestamp: int | str) -> str:
    """The signature KIE sends for ``task_id`` at ``timestamp`` (used by the simulator and tests)."""
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def check_signature(
    key: str, task_id: str | None, headers: Mapping[str, str], now: float | None = None
) -> tuple[str, str | None]:
    """``(VALID | INVALID | ABSENT, reason)`` for a callback's signature headers."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER.lower())
    timestamp = lowered.get(TIMESTAMP_HEADER.lower())
    if not signature and not timestamp:
        return ABSENT, None
    if not signature or not timestamp or not task_id:
        return INVALID, "signature, timestamp or task id missing"
    try:
        stamp = int(timestamp.strip())
    except ValueError:
        return INVALID, "timestamp is not an integer"
    now = time.time() if now is None else now
    if abs(now - stamp) > MAX_SKEW_S:
        return INVALID, f"timestamp {abs(now - stamp):.0f}s away"
    expected = sign(key, task_id, stamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return INVALID, "signature mismatch"
    return VALID, None
