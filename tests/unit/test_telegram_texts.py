"""The bot's messages: every key in both languages, with the same placeholders, and the language
chosen from Telegram's language_code."""

from __future__ import annotations

import string

import pytest

from app.telegram.i18n import CATALOGS, EN, RU, language_for, t


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_both_languages_have_every_key() -> None:
    assert set(EN) - set(RU) == set(), "missing in Russian"
    assert set(RU) - set(EN) == set(), "missing in English"


@pytest.mark.parametrize("key", sorted(EN))
def test_a_message_has_the_same_placeholders_in_both_languages(key: str) -> None:
    assert placeholders(EN[key]) == placeholders(RU[key]), key
    assert EN[key] != RU[key] or not any(c.isalpha() for c in EN[key]) or key.endswith(".line"), key


@pytest.mark.parametrize(
    ("code", "lang"),
    [
        ("ru", "ru"),
        ("uk", "ru"),
        ("be", "ru"),
        ("kk", "ru"),
        ("ru-RU", "ru"),
        ("en", "en"),
        ("de", "en"),
        (None, "en"),
        ("", "en"),
    ],
)
def test_the_language_follows_telegrams_language_code(code: str | None, lang: str) -> None:
    assert language_for(code) == lang


def test_messages_fill_in_and_an_unknown_language_falls_back_to_english() -> None:
    assert t("ru", "status.done", model="m") == "Готово: m"
    assert t("xx", "status.done", model="m") == "Done: m"
    assert set(CATALOGS) == {"en", "ru"}
