"""From a callback as received to the inbox row that stores it: verified, with secrets masked and
the body truncated; and the spool codec that keeps a raw callback on disk while the database is
away."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.callbacks.tokens import verify
from app.db.callback_events import InboxRow
from app.kie.parse import ParsedCallback, parse_callback
from app.logs import get_logger
from app.random_ids import random_hex
from app.redaction import MASK, is_secret_key, redact_text

log = get_logger(__name__)

STORED_BODY_LIMIT = 64 * 1024
PREVIEW_CHARS = 200
# The headers worth keeping for an audit trail; the signature itself is not one of them.
_STORED_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "x-webhook-timestamp",
    "x-task-id",
    "x-request-id",
    "x-forwarded-for",
)


@dataclass(slots=True)
class RawCallback:
    """A callback exactly as received, before any interpretation (treat as read-only)."""

    intake_id: str
    received_at: float
    path: str
    content_type: str | None
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    body_size: int

    @classmethod
    def new(
        cls,
        *,
        path: str,
        content_type: str | None,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        body_size: int,
    ) -> RawCallback:
        """A freshly received callback with a new unique intake id."""
        return cls(random_hex(16), time.time(), path, content_type, query, headers, body, body_size)

    def to_spool(self) -> dict[str, Any]:
        """The JSON record written to the spool (the body base64-encoded, as bytes may be anything)."""
        return {
            "intake_id": self.intake_id,
            "received_at": self.received_at,
            "path": self.path,
            "content_type": self.content_type,
            "query": self.query,
            "headers": self.headers,
            "body_b64": base64.b64encode(self.body).decode(),
            "body_size": self.body_size,
        }

    @classmethod
    def from_spool(cls, record: dict[str, Any]) -> RawCallback:
        """Rebuild a callback from its spool record."""
        return cls(
            intake_id=str(record["intake_id"]),
            received_at=float(record["received_at"]),
            path=str(record.get("path") or "/callbacks/kie"),
            content_type=record.get("content_type"),
            query={str(k): str(v) for k, v in (record.get("query") or {}).items()},
            headers={str(k): str(v) for k, v in (record.get("headers") or {}).items()},
            body=base64.b64decode(record.get("body_b64") or ""),
            body_size=int(record.get("body_size") or 0),
        )

    def preview(self) -> str:
        """The start of the body as text, for a log line (the log formatter masks secrets in it)."""
        return self.body[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")[:PREVIEW_CHARS]


def build_inbox_row(
    raw: RawCallback, parsed: ParsedCallback, *, secret: str | None, hmac_key: str | None, spooled: bool
) -> InboxRow:
    """The inbox row for a callback: verified, with secrets masked and the body truncated."""
    verification, detail, gid = verify(
        query=raw.query,
        headers=raw.headers,
        task_id=parsed.task_id,
        secret=secret,
        hmac_key=hmac_key,
        now=raw.received_at,
    )
    body_text = raw.body[: STORED_BODY_LIMIT * 4].decode("utf-8", errors="replace")
    if "=" in body_text:
        # KIE echoes the create request (our callBackUrl with its token) inside some payloads.
        body_text = redact_text(body_text)
    truncated = raw.body_size > len(raw.body) or len(body_text) > STORED_BODY_LIMIT
    return InboxRow(
        intake_id=raw.intake_id,
        received_at=datetime.fromtimestamp(raw.received_at, UTC),
        path=raw.path[:500],
        content_type=raw.content_type[:200] if raw.content_type else None,
        query={k[:100]: (MASK if is_secret_key(k) else v[:500]) for k, v in list(raw.query.items())[:50]},
        headers={k: raw.headers[k][:500] for k in _STORED_HEADERS if k in raw.headers},
        body=body_text[:STORED_BODY_LIMIT],
        body_size=raw.body_size,
        body_truncated=truncated,
        task_id=parsed.task_id,
        strategy=parsed.strategy,
        verification=verification,
        verification_detail=detail,
        gid=gid[:100] if gid else None,
        parsed=parsed.as_dict(),
        spooled=spooled,
    )


def interpret(
    raw: RawCallback, *, secret: str | None, hmac_key: str | None, spooled: bool = False
) -> InboxRow:
    """The inbox row of one received callback; never raises, so one odd callback cannot sink a batch."""
    try:
        parsed = parse_callback(raw.body, raw.query, raw.headers)
        return build_inbox_row(raw, parsed, secret=secret, hmac_key=hmac_key, spooled=spooled)
    except Exception as exc:  # store it raw all the same: the body is what matters
        log.exception("kie_callback.interpret_failed", intake_id=raw.intake_id, error=repr(exc)[:200])
        unparseable = ParsedCallback(strategy="none", shape="unparseable")
        return build_inbox_row(raw, unparseable, secret=None, hmac_key=None, spooled=spooled)


def received_fields(
    *,
    intake_id: str,
    task_id: str | None,
    strategy: str,
    parsed: dict[str, Any],
    verification: str,
    outcome: str,
    size: int,
    preview: str,
) -> dict[str, Any]:
    """The fields of a ``kie_callback.received`` line (the formatter masks secrets in the preview)."""
    return {
        "intake_id": intake_id,
        "task_id": task_id,
        "strategy": strategy,
        "shape": parsed.get("shape"),
        "state": parsed.get("state"),
        "stage": parsed.get("stage"),
        "verification": verification,
        "outcome": outcome,
        "size": size,
        "preview": preview[:PREVIEW_CHARS],
    }


def row_received_fields(row: InboxRow, outcome: str) -> dict[str, Any]:
    """:func:`received_fields` of a stored row."""
    return received_fields(
        intake_id=row.intake_id,
        task_id=row.task_id,
        strategy=row.strategy,
        parsed=row.parsed,
        verification=row.verification,
        outcome=outcome,
        size=row.body_size,
        preview=row.body,
    )
