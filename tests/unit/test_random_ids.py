"""Buffered random ids: right length, hex only, unique, and never shared with a forked child."""

from __future__ import annotations

import os
import re

import pytest

from app import random_ids
from app.random_ids import random_hex


@pytest.mark.parametrize("size", [1, 7, 8, 16, 32])
def test_an_id_is_twice_size_lowercase_hex_digits(size: int) -> None:
    for _ in range(50):
        assert re.fullmatch(f"[0-9a-f]{{{2 * size}}}", random_hex(size))


def test_the_default_id_is_16_bytes() -> None:
    assert re.fullmatch("[0-9a-f]{32}", random_hex())


def test_100k_ids_are_unique() -> None:
    ids = {random_hex() for _ in range(100_000)}
    assert len(ids) == 100_000


def test_sizes_that_do_not_divide_the_block_never_come_back_short() -> None:
    # 7-byte ids cross many block boundaries; every one must still be complete.
    ids = [random_hex(7) for _ in range(3 * random_ids._BLOCK_BYTES // 7 + 10)]
    assert all(len(value) == 14 for value in ids)
    assert len(set(ids)) == len(ids)


def test_sizes_larger_than_the_block_work() -> None:
    size = random_ids._BLOCK_BYTES + 904
    first, second = random_hex(size), random_hex(size)
    for value in (first, second):
        assert re.fullmatch(f"[0-9a-f]{{{2 * size}}}", value)
    assert first != second
    # Ordinary ids keep working after a large one.
    assert re.fullmatch("[0-9a-f]{32}", random_hex())


def _next_id_in_child() -> str:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once, whatever happens
        code = 1
        try:
            os.close(read_end)
            os.write(write_end, random_hex().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        chunks = []
        while chunk := os.read(read_end, 1024):
            chunks.append(chunk)
    finally:
        os.close(read_end)
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_parents_next_id() -> None:
    random_hex()  # the parent now holds a block with unread bytes a child would inherit
    first_child = _next_id_in_child()
    second_child = _next_id_in_child()
    parent = random_hex()
    assert re.fullmatch("[0-9a-f]{32}", first_child)
    assert re.fullmatch("[0-9a-f]{32}", second_child)
    assert len({parent, first_child, second_child}) == 3
