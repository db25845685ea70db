"""KIE Gateway: start KIE.ai generations from Telegram and HTTP and get their results reliably."""

__version__ = "0.1.0"
