"""Structured logs: one JSON object a line, stable event names, no secrets ever."""

from __future__ import annotations

import json
import logging

import pytest

from app.backoff import Backoff
from app.logs import JsonFormatter, TextFormatter, get_logger
from app.redaction import redact_text, redact_url


def _record(caplog: pytest.LogCaptureFixture, **fields: object) -> logging.LogRecord:
    with caplog.at_level(logging.INFO):
        get_logger("test").info("thing.happened", **fields)
    return caplog.records[-1]


def test_json_lines_carry_event_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    record = _record(caplog, count=3, name="x")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    body = json.loads(line)
    assert body["event"] == "thing.happened"
    assert body["level"] == "info"
    assert body["count"] == 3 and body["name"] == "x"


def test_secret_fields_and_url_passwords_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    record = _record(
        caplog,
        api_key="sk-live-123",
        token="tok-456",
        url="postgresql://admin:pw-789@db:5432/x",
        note="failed to reach https://api.telegram.org/bot123456:AAAbbbCCCdddEEEfffGGGhhh/getMe",
    )
    for formatter in (JsonFormatter(), TextFormatter()):
        text = formatter.format(record)
        for secret in ("sk-live-123", "tok-456", "pw-789", "AAAbbbCCCdddEEEfffGGGhhh"):
            assert secret not in text


def test_redact_url_masks_password_and_secret_query_values() -> None:
    assert (
        redact_url("postgresql://u:pw@h:5432/db?sslmode=require")
        == "postgresql://u:***@h:5432/db?sslmode=require"
    )
    assert redact_url("https://x/cb?gid=1&token=abc") == "https://x/cb?gid=1&token=***"
    assert "pw" not in redact_text("connect to postgres://user:pw@host/db failed")


def test_backoff_grows_is_capped_and_jittered() -> None:
    backoff = Backoff(base=0.1, cap=2.0)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.05 <= delay <= 2.0 for delay in delays)
    assert max(delays[20:]) > 1.0  # it grew
    assert len({round(d, 6) for d in delays[20:]}) > 100  # and is not in lockstep
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_secret_query_parameters_inside_text_are_masked() -> None:
    echoed = '{"param": "{\\"callBackUrl\\": \\"https://gw.example/callbacks/kie?gid=g1&token=0123abcd\\"}"}'
    masked = redact_text(echoed)
    assert "0123abcd" not in masked and "gid=g1" in masked and "token=***" in masked
