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


def _batch_records(
    caplog: pytest.LogCaptureFixture, items: list[dict[str, object]]
) -> list[logging.LogRecord]:
    with caplog.at_level(logging.INFO):
        get_logger("test").info_each("batch.event", items)
    return [record for record in caplog.records if record.msg == "batch.event"]


def _batch_items() -> list[dict[str, object]]:
    return [
        {
            "n": n,
            "gid": f"g{n}",
            "token": f"tok-{n}-hidden",
            "error": f"connect to postgresql://admin:pw-{n}-hidden@db:5432/x failed",
            "callback": f"https://gw.example/callbacks/kie?gid=g{n}&token=q-{n}-hidden",
        }
        for n in range(3)
    ]


def test_info_each_logs_one_json_line_per_item(caplog: pytest.LogCaptureFixture) -> None:
    items = [{"n": 0, "state": "queued"}, {"n": 1, "state": "running", "ok": True}, {"n": 2}]
    records = _batch_records(caplog, items)
    assert len(records) == 1  # the whole batch goes through the logging machinery once
    lines = JsonFormatter().format(records[0]).split("\n")
    assert len(lines) == 3
    for item, line in zip(items, lines, strict=True):
        body = json.loads(line)
        assert body["event"] == "batch.event"
        assert body["level"] == "info"
        assert body["logger"] == "test"
        assert isinstance(body["ts"], float)
        assert {key: body[key] for key in item} == item
        assert set(body) == {"ts", "level", "event", "logger", *item}


def test_info_each_lines_match_what_info_writes(caplog: pytest.LogCaptureFixture) -> None:
    items = _batch_items()
    batch = JsonFormatter().format(_batch_records(caplog, items)[0]).split("\n")
    for item, line in zip(items, batch, strict=True):
        with caplog.at_level(logging.INFO):
            get_logger("test").info("batch.event", **item)
        single = json.loads(JsonFormatter().format(caplog.records[-1]))
        batched = json.loads(line)
        single.pop("ts"), batched.pop("ts")
        assert batched == single


def test_info_each_masks_secrets_in_every_line(caplog: pytest.LogCaptureFixture) -> None:
    items = _batch_items()
    record = _batch_records(caplog, items)[0]

    json_lines = JsonFormatter().format(record).split("\n")
    assert len(json_lines) == 3
    for n, line in enumerate(json_lines):
        body = json.loads(line)
        assert body["n"] == n and body["gid"] == f"g{n}"
        assert body["token"] == "***"
        assert body["error"] == "connect to postgresql://admin:***@db:5432/x failed"
        assert body["callback"] == f"https://gw.example/callbacks/kie?gid=g{n}&token=***"

    text_lines = TextFormatter().format(record).split("\n")
    assert len(text_lines) == 3
    for n, line in enumerate(text_lines):
        assert " batch.event " in line and f" n={n} " in line
        assert " token=*** " in line
        assert "postgresql://admin:***@db:5432/x" in line
        assert f"?gid=g{n}&token=***" in line

    for text in ("\n".join(json_lines), "\n".join(text_lines)):
        for n in range(3):
            for secret in (f"tok-{n}-hidden", f"pw-{n}-hidden", f"q-{n}-hidden"):
                assert secret not in text
    # Masking works on copies: the caller's items are untouched.
    assert items == _batch_items()


def test_info_each_with_no_items_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert _batch_records(caplog, []) == []


def test_info_each_below_the_logger_level_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        get_logger("test").info_each("batch.event", _batch_items())
    assert [record for record in caplog.records if record.msg == "batch.event"] == []
    with caplog.at_level(logging.WARNING, logger="test"):
        get_logger("test").info_each("batch.event", _batch_items())
    assert [record for record in caplog.records if record.msg == "batch.event"] == []
