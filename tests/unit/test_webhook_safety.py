"""Which webhook URLs and addresses are refused, and the retry schedule between attempts."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import re
import socket
from urllib.parse import urlsplit

import jsonschema_rs
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from bot.webhooks.retry import SCHEDULE, RetryPolicy
from bot.webhooks.safety import (
    URL_LIMIT,
    URL_PATTERN,
    BlockedAddress,
    GuardedResolver,
    Resolve,
    UnsafeUrl,
    address_allowed,
    check_resolves,
    check_url,
    system_resolve,
)

REFUSED = [
    "127.0.0.1",
    "127.8.9.10",
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # CGNAT
    "100.100.100.200",  # a cloud's metadata, in CGNAT space
    "0.0.0.0",
    "255.255.255.255",
    "224.0.0.1",
    "198.18.0.1",
    "192.0.2.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",  # a cloud's IPv6 metadata
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2002:c0a8:101::1",  # 6to4 of 192.168.1.1
    "2001:db8::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
]
ALLOWED = ["93.184.215.14", "8.8.8.8", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", REFUSED)
def test_internal_addresses_are_refused(address: str) -> None:
    assert not address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_allowed(ipaddress.ip_address(address))


@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=4, network="127.0.0.0/8"))
def test_every_private_and_loopback_ipv4_is_refused_even_mapped_into_ipv6(
    address: ipaddress.IPv4Address,
) -> None:
    assert not address_allowed(address)
    assert not address_allowed(ipaddress.IPv6Address(f"::ffff:{address}"))


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "ftp://example.com/",
        "https://",
        "https:///path",
        "https://user:pass@example.com/",
        "https://token@example.com/",
        "https://127.0.0.1/",
        "https://[::1]:8443/",
        "https://169.254.169.254/latest/meta-data/",
        "https://example.com:99999/",
        "https://exa mple.com/",
        "https://example.com/\n",
        "https://example.com/" + "a" * 2048,
        "javascript:alert(1)",
        "https://example.com:0/",
        "https://example.com:/",  # an empty port
        "https://example.com:0443/",  # a port with a leading zero
        "https://[v1.fe80]/",  # IPvFuture: nothing can connect to it
        "https://[fe80::1%25eth0]/",  # a zone is this machine's business only
        "https://[1.2.3.4]/",
        "https://[::1/",
        " https://example.com/",
        "https://example.com/ ",
        "https://bücher.example/",  # punycode it: xn--bcher-kva.example
        "https://example.com/\u00e9t\u00e9",
    ],
)
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=False)


def test_allowing_private_addresses_allows_http_and_loopback_but_not_the_rest() -> None:
    for url in ("http://127.0.0.1:8080/hook", "https://10.0.0.5/", "http://localhost/"):
        assert check_url(url, allow_private=True) == url
    for url in ("ftp://127.0.0.1/", "http://u:p@127.0.0.1/", "http://"):
        with pytest.raises(UnsafeUrl):
            check_url(url, allow_private=True)
    assert check_url("https://example.com/hooks?x=1", allow_private=False)


@given(st.from_regex(URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= URL_LIMIT))
def test_every_url_the_document_calls_valid_is_taken_and_read_as_one_host_and_port(
    url: str,
) -> None:
    """URL_PATTERN (the API document's) and check_url say the same; Python's own URL parser
    then finds a host, and a port in range, in whatever the pattern lets through."""
    assert check_url(url, allow_private=True) == url
    assert jsonschema_rs.validator_for({"pattern": URL_PATTERN}).is_valid(url)
    parts = urlsplit(url)
    assert parts.hostname
    assert parts.port is None or 1 <= parts.port <= 65535
    assert parts.username is None


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=40))
def test_what_the_document_calls_invalid_is_refused(tail: str) -> None:
    url = "https://" + tail
    if re.fullmatch(URL_PATTERN.strip("^$"), url):
        return
    with pytest.raises(UnsafeUrl):
        check_url(url, allow_private=True)


def _resolving(table: dict[str, list[str]]) -> Resolve:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror("no such name")
        return table[host]

    return resolve


async def test_a_name_is_refused_if_any_of_its_addresses_is_internal() -> None:
    resolve = _resolving(
        {
            "public.example": ["93.184.215.14"],
            "split.example": ["93.184.215.14", "10.0.0.7"],
            "inside.example": ["192.168.0.2"],
        }
    )
    await check_resolves("https://public.example/", allow_private=False, resolve=resolve)
    for host in ("split.example", "inside.example", "nowhere.example"):
        with pytest.raises(UnsafeUrl):
            await check_resolves(f"https://{host}/", allow_private=False, resolve=resolve)
    await check_resolves("https://inside.example/", allow_private=True, resolve=resolve)
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await check_resolves("https://nowhere.example/", allow_private=True, resolve=resolve)


async def test_localhost_is_refused_through_the_systems_resolver() -> None:
    resolve = system_resolve(asyncio.get_running_loop())
    with pytest.raises(UnsafeUrl, match="private, loopback"):
        await check_resolves("https://localhost:8443/", allow_private=False, resolve=resolve)


class _Table(AbstractResolver):
    def __init__(self, addresses: list[str]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": a, "port": port, "family": family, "proto": 0, "flags": 0}
            for a in self.addresses
        ]

    async def close(self) -> None:
        return None


async def test_the_connectors_resolver_refuses_a_name_that_now_points_inside() -> None:
    inner = _Table(["93.184.215.14"])
    guarded = GuardedResolver(inner, allow_private=False)
    assert [r["host"] for r in await guarded.resolve("hooks.example", 443)] == ["93.184.215.14"]
    inner.addresses = ["93.184.215.14", "127.0.0.1"]  # rebound since it was registered
    with pytest.raises(BlockedAddress):
        await guarded.resolve("hooks.example", 443)
    assert await GuardedResolver(inner, allow_private=True).resolve("hooks.example", 443)


def test_the_schedule_is_standard_webhooks_scaled_with_jitter_then_spent() -> None:
    policy = RetryPolicy(rng=random.Random(1))
    for attempts, wanted in zip(range(1, 8), SCHEDULE[1:], strict=True):
        delay = policy.delay_after(attempts)
        assert delay is not None
        assert 0.8 * wanted <= delay <= 1.2 * wanted
    assert policy.delay_after(8) is None
    assert policy.attempts == 8
    assert SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
    fast = RetryPolicy(scale=lambda seconds: seconds / 60, jitter=0.0)
    assert fast.delay_after(2) == 5.0
    assert fast.delay_after(2, retry_after=120.0) == 120.0  # never sooner than asked
    assert fast.delay_after(2, retry_after=1.0) == 5.0  # nor sooner than the schedule
    assert fast.delay_after(2, retry_after=10**9) == 86_400.0
