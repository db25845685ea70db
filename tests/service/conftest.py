"""Fixtures of the in-process service tests."""

from tests.support.telegram_stack import bot_stack, fake

__all__ = ["bot_stack", "fake"]
