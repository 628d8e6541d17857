"""Which address a request comes from, and a per-address rate limit for unauthenticated pages."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

MAX_ADDRESSES: Final = 10_000
"""Addresses remembered at once; the least recently seen is forgotten first."""
IPV6_PREFIX: Final = 64
"""One IPv6 subscriber usually holds a whole /64, so that is what counts as one address."""


def client_address(request: web.Request, *, proxy_hops: int) -> str:
    """The client's address: the peer's, or with `proxy_hops` trusted proxies in front, the
    address the outermost of them saw (X-Forwarded-For entries further left are the client's
    own claims and can be forged)."""
    peer = request.remote or "unknown"
    if proxy_hops <= 0:
        return _group(peer)
    forwarded = [
        part.strip()
        for header in request.headers.getall("X-Forwarded-For", [])
        for part in header.split(",")
        if part.strip()
    ]
    if not forwarded:
        return _group(peer)
    candidate = forwarded[max(0, len(forwarded) - proxy_hops)]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return _group(peer)
    return _group(candidate)


def _group(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/{IPV6_PREFIX}", strict=False))
    return str(parsed)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class AddressLimiter:
    """A token bucket per address: `per_minute` at once, refilled at `per_minute` a minute.

    `per_minute` 0 turns the limit off. The table of addresses is bounded.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def acquire(self, address: str) -> int | None:
        """None if this address may go ahead now, else the whole seconds until it may."""
        if self._capacity <= 0:
            return None
        now = self._clock()
        bucket = self._buckets.pop(address, None)
        if bucket is None:
            bucket = _Bucket(self._capacity, now)
            while len(self._buckets) >= self._max_addresses:
                self._buckets.popitem(last=False)
        bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        self._buckets[address] = bucket
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return max(1, math.ceil((1.0 - bucket.tokens) / self._rate))

    def __len__(self) -> int:
        return len(self._buckets)
