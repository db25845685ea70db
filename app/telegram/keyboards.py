"""Inline keyboards and their ``callback_data``: short keys only (Telegram allows 64 bytes), so the
wizard's state lives in the conversation storage, and every button says which menu it belongs to
(the catalog's version, or the wizard's id) so a button from an old message is recognised as such.

Keys: ``mn:<what>`` main menu; ``pg:<ver>:<kind>:<page>`` a page of models; ``md:<ver>:<i>`` a
model's card; ``ws:<ver>:<i>`` start its wizard; ``w<op>:<wid>[:<field>][:<arg>]`` a wizard step; ``rp``,
``rn`` and ``rw`` the result's buttons; ``hs:<page>`` and ``hr:<id>`` history.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from app.kie.catalog import Model
from app.telegram.i18n import t

PAGE_SIZE = 6
_ROW = 2


def button(text: str, data: str) -> InlineKeyboardButton:
    """One button; ``data`` must stay within Telegram's 64 bytes."""
    assert len(data.encode()) <= 64, data
    return InlineKeyboardButton(text=text, callback_data=data)


def rows(buttons: Sequence[InlineKeyboardButton], width: int = _ROW) -> list[list[InlineKeyboardButton]]:
    """Buttons laid out ``width`` to a row."""
    return [list(buttons[i : i + width]) for i in range(0, len(buttons), width)]


def main_menu(lang: str) -> InlineKeyboardMarkup:
    """Image, Video, Music, History, Help."""
    kinds = [button(t(lang, f"menu.{kind}"), f"mn:{kind}") for kind in ("image", "video", "audio")]
    extra = [button(t(lang, "menu.history"), "mn:history"), button(t(lang, "menu.help"), "mn:help")]
    return InlineKeyboardMarkup(inline_keyboard=[kinds, extra])


def model_page(
    lang: str, version: str, kind: str, models: list[tuple[int, Model]], page: int
) -> tuple[InlineKeyboardMarkup, int]:
    """One page of a kind's models, with paging; and the number of pages."""
    pages = max(1, -(-len(models) // PAGE_SIZE))
    page = min(max(page, 0), pages - 1)
    shown = models[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    keyboard = [[button(model.title, f"md:{version}:{index}")] for index, model in shown]
    paging = []
    if page > 0:
        paging.append(button(t(lang, "button.prev"), f"pg:{version}:{kind}:{page - 1}"))
    if page < pages - 1:
        paging.append(button(t(lang, "button.next"), f"pg:{version}:{kind}:{page + 1}"))
    if paging:
        keyboard.append(paging)
    keyboard.append([button(t(lang, "button.back"), "mn:menu")])
    return InlineKeyboardMarkup(inline_keyboard=keyboard), pages


def model_card(lang: str, version: str, index: int, kind: str) -> InlineKeyboardMarkup:
    """Start, or back to the kind's models."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(t(lang, "button.start"), f"ws:{version}:{index}")],
            [button(t(lang, "button.back"), f"pg:{version}:{kind}:0")],
        ]
    )


def field_key(name: str) -> str:
    """Four characters naming a field in its question's buttons, so a button of an earlier
    question of the same wizard never answers the one asked now."""
    return hashlib.blake2b(name.encode(), digest_size=2).hexdigest()


def question(
    lang: str,
    wid: str,
    field: str,
    choices: Sequence[tuple[Any, str]],
    *,
    optional: bool,
    done: bool = False,
) -> InlineKeyboardMarkup:
    """A wizard question about ``field``: its choices (if any), then Done/Skip, Back and Cancel."""
    key = field_key(field)
    labels = [t(lang, label) if label.startswith("bool.") else label for _, label in choices]
    keyboard = rows([button(label[:60], f"wc:{wid}:{key}:{i}") for i, label in enumerate(labels)])
    tail = []
    if done:
        tail.append(button(t(lang, "button.done"), f"wd:{wid}:{key}"))
    if optional:
        tail.append(button(t(lang, "button.skip"), f"wk:{wid}:{key}"))
    if tail:
        keyboard.append(tail)
    keyboard.append(
        [button(t(lang, "button.back"), f"wb:{wid}"), button(t(lang, "button.cancel"), f"wx:{wid}")]
    )
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def settings(lang: str, wid: str, entries: Sequence[tuple[int, str]]) -> InlineKeyboardMarkup:
    """The optional fields (index, "name: value"), then Generate, Back and Cancel."""
    keyboard = [[button(text[:60], f"wf:{wid}:{index}")] for index, text in entries]
    keyboard.append([button(t(lang, "button.generate"), f"wg:{wid}")])
    keyboard.append(
        [button(t(lang, "button.back"), f"wb:{wid}"), button(t(lang, "button.cancel"), f"wx:{wid}")]
    )
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def confirm(lang: str, wid: str) -> InlineKeyboardMarkup:
    """Confirm, Back (to the settings) or Cancel."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(t(lang, "button.confirm"), f"wy:{wid}")],
            [button(t(lang, "button.back"), f"wb:{wid}"), button(t(lang, "button.cancel"), f"wx:{wid}")],
        ]
    )


def result_keyboard(lang: str, generation_id: uuid.UUID) -> InlineKeyboardMarkup:
    """Repeat, Same settings with a new prompt, New."""
    gid = generation_id.hex
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(t(lang, "button.repeat"), f"rp:{gid}"), button(t(lang, "button.new"), "rw")],
            [button(t(lang, "button.new_prompt"), f"rn:{gid}")],
        ]
    )


def history(
    lang: str, entries: Sequence[tuple[uuid.UUID, str]], page: int, more: bool
) -> InlineKeyboardMarkup:
    """One "send again" button per generation, and paging."""
    keyboard = [[button(text[:60], f"hr:{gid.hex}")] for gid, text in entries]
    paging = []
    if page > 0:
        paging.append(button(t(lang, "button.prev"), f"hs:{page - 1}"))
    if more:
        paging.append(button(t(lang, "button.next"), f"hs:{page + 1}"))
    if paging:
        keyboard.append(paging)
    return InlineKeyboardMarkup(inline_keyboard=keyboard)
