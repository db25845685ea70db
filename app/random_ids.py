"""Random hex ids for hot paths: request ids and callback intake ids.

``os.urandom`` is one system call per id; under a callback storm that is
thousands of calls a second. Reading the kernel's randomness in blocks keeps the
ids exactly as unpredictable and unique while paying the call once per block.
"""

from __future__ import annotations

import os

_BLOCK_BYTES = 16 * 256


class _RandomBlock:
    __slots__ = ("_block", "_offset")

    def __init__(self) -> None:
        self._block = b""
        self._offset = 0

    def discard(self) -> None:
        """Forget the unread part of the block (the next id reads a fresh one)."""
        self._block = b""
        self._offset = 0

    def take(self, size: int) -> bytes:
        if self._offset + size > len(self._block):
            self._block = os.urandom(max(_BLOCK_BYTES, size))
            self._offset = 0
        start = self._offset
        self._offset = start + size
        return self._block[start : start + size]


_source = _RandomBlock()
if hasattr(os, "register_at_fork"):
    # A forked child must never reuse the parent's unread block.
    os.register_at_fork(after_in_child=_source.discard)


def random_hex(size: int = 16) -> str:
    """``size`` random bytes from the OS, as ``2 * size`` hex digits (not for secrets)."""
    return _source.take(size).hex()
