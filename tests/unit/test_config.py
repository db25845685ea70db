"""Configuration: defaults, validation messages, secrets kept out of messages, exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings
from tests.support.service import ROOT


def test_defaults_without_any_variable() -> None:
    settings = load_settings({})
    assert settings.port == 8080
    assert settings.host == "0.0.0.0"
    assert settings.database_url is None and settings.embedded_database
    assert settings.data_dir == Path("data")
    assert settings.public_base_url == "http://localhost:8080"
    assert settings.kie_base_url == "https://api.kie.ai"
    assert settings.kie_simulated
    assert settings.api_keys == ()
    assert settings.telegram_bot_token is None


def test_public_base_url_falls_back_to_render_then_port() -> None:
    assert load_settings({"PORT": "9000"}).public_base_url == "http://localhost:9000"
    render = {"RENDER_EXTERNAL_URL": "https://kg.onrender.com"}
    assert load_settings(render).public_base_url == "https://kg.onrender.com"
    both = {**render, "PUBLIC_BASE_URL": "https://kie.example.com/"}
    assert load_settings(both).public_base_url == "https://kie.example.com"


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "PORT": "9090",
            "DATABASE_URL": "postgresql://u:p@db.internal:5432/kg",
            "API_KEYS": "key-one-123, key-two-456,,",
            "TELEGRAM_BOT_TOKEN": "123456:ABCdefGhIJKlmNoPQRsTUVwxyZ12345",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.port == 9090
    assert settings.database_url == "postgresql://u:p@db.internal:5432/kg"
    assert settings.api_keys == ("key-one-123", "key-two-456")
    assert settings.log_level == "DEBUG"


def test_unix_socket_database_url_is_accepted() -> None:
    url = "postgresql://postgres@/kg?host=/run/postgresql"
    assert load_settings({"DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("env", "variable", "shown", "expected"),
    [
        ({"PORT": "abc"}, "PORT", "'abc'", "an integer from 1 to 65535"),
        ({"PORT": "70000"}, "PORT", "'70000'", "an integer from 1 to 65535"),
        ({"PORT": "0"}, "PORT", "'0'", "an integer from 1 to 65535"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL", "'mysql://u@h/db'", "a PostgreSQL URL"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL", "'not a url'", "a PostgreSQL URL"),
        ({"DATABASE_URL": "postgresql://h:port/db"}, "DATABASE_URL", None, "a PostgreSQL URL"),
        ({"KIE_BASE_URL": "ftp://kie"}, "KIE_BASE_URL", "'ftp://kie'", "an http(s) URL"),
        ({"PUBLIC_BASE_URL": "example.com"}, "PUBLIC_BASE_URL", "'example.com'", "an http(s) URL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL", "'loud'", "one of DEBUG"),
        ({"SHUTDOWN_TIMEOUT_S": "nan"}, "SHUTDOWN_TIMEOUT_S", "'nan'", "seconds from"),
        ({"LEADER_LOCK_NAME": "has spaces"}, "LEADER_LOCK_NAME", "'has spaces'", "letters, digits"),
        ({"LEADER_LEASE_S": "1"}, "LEADER_LEASE_S", "'1'", "seconds from 2 to 8"),
        ({"LEADER_LEASE_S": "30"}, "LEADER_LEASE_S", "'30'", "seconds from 2 to 8"),
        ({"KIE_CALLBACK_SECRET": "short"}, "KIE_CALLBACK_SECRET", "<redacted>", "at least 16 characters"),
    ],
)
def test_bad_values_name_variable_value_and_expectation(
    env: dict[str, str], variable: str, shown: str | None, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    message = str(caught.value)
    assert message.startswith(f"{variable}=")
    if shown is not None:
        assert shown in message
    assert expected in message


def test_database_password_never_appears_in_the_message() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"DATABASE_URL": "mysql://admin:hunter2-secret@db/x"})
    assert "hunter2-secret" not in str(caught.value)
    assert "admin:***@db" in str(caught.value)


def test_secret_values_are_never_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TELEGRAM_BOT_TOKEN": "not-a-token-but-secret"})
    assert "not-a-token-but-secret" not in str(caught.value)
    assert "<redacted>" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings({"API_KEYS": "short"})
    assert "short" not in str(caught.value).replace("API_KEYS", "")


@pytest.mark.parametrize("env", [{"PORT": "abc"}, {"PORT": "70000"}, {"DATABASE_URL": "redis://localhost/0"}])
def test_process_exits_2_with_one_line_and_no_traceback(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "main_render.py"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    variable = next(iter(env))
    assert lines[0].startswith(f"configuration error: {variable}=")
    assert "expected" in lines[0]


def test_every_variable_read_is_documented_in_env_example() -> None:
    import re

    source = (ROOT / "app" / "config.py").read_text()
    read = set(re.findall(r'reader\.(?:get|optional)\(\s*"([A-Z_]+)"', source))
    documented = {
        line.split("=", 1)[0].strip()
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert read, "the pattern must find the variables"
    # RENDER_EXTERNAL_URL is set by Render itself; it is described under PUBLIC_BASE_URL.
    assert read - documented == {"RENDER_EXTERNAL_URL"}
