"""The Telegram bot: updates stored before they are acknowledged, handled once by any instance,
results delivered once by the leader."""
