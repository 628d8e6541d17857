"""Where webhooks may go: public HTTPS addresses only, checked again at every connection."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

URL_LIMIT: Final = 2048
RESOLVE_TIMEOUT: Final = 5.0
"""Seconds a name may take to resolve when an endpoint is registered."""

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]
"""A name and port to the addresses it resolves to."""


class UnsafeUrl(ValueError):
    """A URL webhooks may not be sent to; the message says why, for the API's caller."""


class BlockedAddress(OSError):
    """A name resolved to an address webhooks may not reach (raised inside the connector)."""


def address_allowed(address: IpAddress) -> bool:
    """Whether an address is on the public internet: not loopback, private, link-local (cloud
    metadata), shared (CGNAT), multicast, reserved or documentation, even when wrapped in IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        if embedded is not None:
            return address_allowed(embedded)
        if address.teredo is not None:
            return False
    return address.is_global and not address.is_multicast


def check_url(url: str, *, allow_private: bool) -> str:
    """The URL if its form may be used, else UnsafeUrl: https (http too when private addresses
    are allowed), a host, no credentials, at most URL_LIMIT characters. An IP literal is
    checked here; a name is checked when it is resolved (`check_resolves`, `GuardedResolver`)."""
    if len(url) > URL_LIMIT:
        raise UnsafeUrl(f"url must be at most {URL_LIMIT} characters.")
    if not url.isprintable() or any(c.isspace() for c in url):
        raise UnsafeUrl("url must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("url is not a valid URL.") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise UnsafeUrl("url must start with https://.")
    if not parts.hostname:
        raise UnsafeUrl("url must name a host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("url must not carry credentials; authenticate with the signature.")
    if port == 0:
        raise UnsafeUrl("url has no valid port.")
    literal = ip_literal(parts.hostname)
    if literal is not None and not allow_private and not address_allowed(literal):
        raise UnsafeUrl("url points to a private, loopback or link-local address.")
    return url


def ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def check_resolves(url: str, *, allow_private: bool, resolve: Resolve) -> None:
    """UnsafeUrl unless the URL's host resolves, and (unless allowed) only to public addresses."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ip_literal(host) is not None:
        return
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            addresses = await resolve(host, parts.port or 443)
    except (OSError, TimeoutError, UnicodeError):
        # UnicodeError: a name IDNA cannot encode.
        raise UnsafeUrl("url's host does not resolve.") from None
    if not addresses:
        raise UnsafeUrl("url's host does not resolve.")
    if allow_private:
        return
    for address in addresses:
        found = ip_literal(address)
        if found is None or not address_allowed(found):
            raise UnsafeUrl("url's host resolves to a private, loopback or link-local address.")


def system_resolve(loop: asyncio.AbstractEventLoop) -> Resolve:
    """The system resolver (getaddrinfo), as `check_resolves` takes it."""

    async def resolve(host: str, port: int) -> list[str]:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return [str(info[4][0]) for info in infos]

    return resolve


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to addresses webhooks may not reach.

    The connector connects to exactly the addresses returned here, so a name cannot resolve to
    a public address for the check and a private one for the connection (DNS rebinding). IP
    literals never reach a resolver; `check_url` covers them before each attempt.
    """

    def __init__(self, inner: AbstractResolver, *, allow_private: bool) -> None:
        self._inner = inner
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        for result in found:
            address = ip_literal(result["host"])
            if address is None or not address_allowed(address):
                raise BlockedAddress("the host resolves to an address webhooks may not reach")
        return found

    async def close(self) -> None:
        await self._inner.close()
