"""Which webhook URLs we call: https (http only with ``WEBHOOK_ALLOW_INSECURE``), and never a host
that resolves to a loopback, private, link-local, multicast or otherwise special address unless
``WEBHOOK_ALLOW_PRIVATE`` (checked when the generation is created, and again before every attempt,
since DNS can change in between: a rebinding attack)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from app.config import WebhookSettings

_RESOLVE_TIMEOUT_S = 3.0
_MAX_URL = 2048


class RefusedTarget(ValueError):
    """The URL may not be called; the message says why (it names no secret)."""


def check_url(url: str, settings: WebhookSettings) -> str:
    """The URL's host, when its form is acceptable; raises RefusedTarget."""
    if len(url) > _MAX_URL:
        raise RefusedTarget(f"webhook_url is longer than {_MAX_URL} characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # a malformed port raises here
    except ValueError:
        raise RefusedTarget("webhook_url is not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RefusedTarget("webhook_url must be an https URL with a host")
    if parts.scheme == "http" and not settings.allow_insecure:
        raise RefusedTarget("webhook_url must be https (http needs WEBHOOK_ALLOW_INSECURE=true)")
    if parts.username or parts.password:
        raise RefusedTarget("webhook_url must not carry credentials")
    return parts.hostname


def _special(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def check_target(url: str, settings: WebhookSettings) -> None:
    """Refuse a URL whose host resolves to any special address (bounded lookup); RefusedTarget."""
    host = check_url(url, settings)
    if settings.allow_private:
        return
    try:
        async with asyncio.timeout(_RESOLVE_TIMEOUT_S):
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError):
        raise RefusedTarget(f"webhook_url's host {host!r} does not resolve") from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or any(_special(address) for address in addresses):
        raise RefusedTarget(
            f"webhook_url's host {host!r} resolves to a loopback, private, link-local or multicast "
            "address (allowed only with WEBHOOK_ALLOW_PRIVATE=true)"
        )
