"""Where webhooks may go: public HTTPS addresses only, checked again at every connection."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

URL_LIMIT: Final = 2048
RESOLVE_TIMEOUT: Final = 5.0
"""Seconds a name may take to resolve when an endpoint is registered."""

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def _url_pattern() -> str:
    """RFC 3986's absolute http(s) URL, ASCII only, with a host, no user information and, if
    any, a port from 1 to 65535; written in the regular expressions JSON Schema, Python and the
    fuzzer's generator share, so the API document states exactly what `check_url` takes."""
    dec = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
    ipv4 = rf"{dec}(\.{dec}){{3}}"
    h16 = "[0-9A-Fa-f]{1,4}"
    ls32 = f"({h16}:{h16}|{ipv4})"
    ipv6 = "|".join(
        [
            f"({h16}:){{6}}{ls32}",
            f"::({h16}:){{5}}{ls32}",
            f"({h16})?::({h16}:){{4}}{ls32}",
            f"(({h16}:){{0,1}}{h16})?::({h16}:){{3}}{ls32}",
            f"(({h16}:){{0,2}}{h16})?::({h16}:){{2}}{ls32}",
            f"(({h16}:){{0,3}}{h16})?::{h16}:{ls32}",
            f"(({h16}:){{0,4}}{h16})?::{ls32}",
            f"(({h16}:){{0,5}}{h16})?::{h16}",
            f"(({h16}:){{0,6}}{h16})?::",
        ]
    )
    name = "[A-Za-z0-9._~!$&'()*+,;=%-]+"
    port = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"
    rest = "[/?#][!-~]*"
    return rf"^[Hh][Tt][Tt][Pp][Ss]?://(\[({ipv6})\]|{name})(:{port})?({rest})?$"


URL_PATTERN: Final = _url_pattern()
_URL: Final = re.compile(URL_PATTERN)
_VISIBLE_ASCII: Final = re.compile("[!-~]*")

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
    """The URL if its form may be used, else UnsafeUrl: URL_PATTERN (https, or http too when
    private addresses are allowed), at most URL_LIMIT characters. An IP literal is checked
    here; a name is checked when it is resolved (`check_resolves`, `GuardedResolver`)."""
    if len(url) > URL_LIMIT:
        raise UnsafeUrl(f"url must be at most {URL_LIMIT} characters.")
    if not _VISIBLE_ASCII.fullmatch(url):
        raise UnsafeUrl(
            "url must be ASCII without spaces or control characters "
            "(punycode the host, percent-encode the rest)."
        )
    schemes = ("https", "http") if allow_private else ("https",)
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() not in schemes or not rest.startswith("//"):
        raise UnsafeUrl("url must start with https://.")
    if "@" in re.split("[/?#]", rest[2:], maxsplit=1)[0]:
        raise UnsafeUrl("url must not carry credentials; authenticate with the signature.")
    if not _URL.fullmatch(url):
        raise UnsafeUrl(
            "url must name a host (a name, an IPv4 address or an IPv6 one in brackets) and, "
            "if any, a port from 1 to 65535."
        )
    host = urlsplit(url).hostname or ""
    literal = ip_literal(host)
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
