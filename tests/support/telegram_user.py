"""A user driving the bot through the fake Bot API, the way a person would: typing messages and
commands, sending photos, and pressing the buttons the bot shows (only buttons really on screen)."""

from __future__ import annotations

from typing import Any

from tests.support.fake_telegram import ChatMessage, FakeBotApi, FakeUser


class TelegramUser:
    """One user in their private chat with the bot."""

    def __init__(self, fake: FakeBotApi, user: FakeUser | None = None) -> None:
        self.fake = fake
        self.user = fake.add_user(user) if user is not None else fake.user

    @property
    def chat_id(self) -> int:
        """The private chat's id (the user's id)."""
        return self.user.id

    def bot_messages(self) -> list[ChatMessage]:
        """The bot's messages in this chat, oldest first, as they are now."""
        return self.fake.chat_messages(self.chat_id)

    def _count(self) -> int:
        return len(self.bot_messages())

    async def _after(self, update: dict[str, Any], replies: int, timeout: float) -> list[ChatMessage]:
        before = self._count()
        self.fake.push_update(update)
        await self.fake.wait_for(
            lambda: self._count() >= before + replies, timeout=timeout, what=f"{replies} bot message(s)"
        )
        return self.bot_messages()[before:]

    async def send_update(
        self, update: dict[str, Any], *, replies: int = 1, timeout: float = 15
    ) -> list[ChatMessage]:
        """Push a hand-made update (a press of a button no longer shown, a file of a given size)."""
        return await self._after(update, replies, timeout)

    async def say(self, text: str, *, replies: int = 1, timeout: float = 15) -> list[ChatMessage]:
        """Type ``text``; the bot's new messages once ``replies`` arrived."""
        return await self._after(self.fake.make_text_message(text, user=self.user), replies, timeout)

    async def command(
        self, command: str, args: str = "", *, replies: int = 1, timeout: float = 15
    ) -> list[ChatMessage]:
        """Send ``/command args``."""
        return await self._after(self.fake.make_command(command, args, user=self.user), replies, timeout)

    async def photo(self, data: bytes, *, replies: int = 1, timeout: float = 15) -> list[ChatMessage]:
        """Send a photo."""
        return await self._after(self.fake.make_photo_message(data, user=self.user), replies, timeout)

    async def document(
        self, data: bytes, file_name: str, mime_type: str, *, replies: int = 1, timeout: float = 15
    ) -> list[ChatMessage]:
        """Send a file as a document."""
        update = self.fake.make_document_message(
            data, file_name=file_name, mime_type=mime_type, user=self.user
        )
        return await self._after(update, replies, timeout)

    def buttons(self, message: ChatMessage | None = None) -> list[tuple[str, str]]:
        """(text, callback_data) of the buttons on ``message`` (default: the newest with buttons)."""
        message = message or self.with_buttons()
        markup = message.reply_markup or {}
        return [
            (str(b.get("text")), str(b.get("callback_data")))
            for row in markup.get("inline_keyboard", [])
            for b in row
            if b.get("callback_data")
        ]

    def with_buttons(self) -> ChatMessage:
        """The newest bot message that has buttons."""
        for message in reversed(self.bot_messages()):
            if message.reply_markup:
                return message
        raise AssertionError(f"no bot message with buttons: {[m.text for m in self.bot_messages()]}")

    async def press(
        self,
        text: str,
        *,
        message: ChatMessage | None = None,
        exact: bool = False,
        replies: int = 1,
        timeout: float = 15,
    ) -> list[ChatMessage]:
        """Press the button whose text is (or starts with) ``text`` on the newest message with buttons."""
        message = message or self.with_buttons()
        for label, data in self.buttons(message):
            if label == text or (not exact and label.startswith(text)):
                return await self.press_data(data, message=message, replies=replies, timeout=timeout)
        raise AssertionError(f"no button {text!r} on message {message.message_id}: {self.buttons(message)}")

    async def press_data(
        self, data: str, *, message: ChatMessage, replies: int = 1, timeout: float = 15
    ) -> list[ChatMessage]:
        """Press the button with ``callback_data == data`` on ``message`` (it must be shown there)."""
        update = self.fake.make_callback_query(self.chat_id, message.message_id, data, user=self.user)
        return await self._after(update, replies, timeout)
