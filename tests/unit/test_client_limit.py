"""Whose address a request is, and the per-address bucket of /slack/install."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from bot.config import Settings
from bot.errors import ConfigError
from bot.slack.client_limit import AddressLimiter, client_address


def request(peer: str, *forwarded: str) -> object:
    headers = CIMultiDict(("X-Forwarded-For", value) for value in forwarded)

    class Transport:
        def get_extra_info(self, name: str, default: object = None) -> object:
            return (peer, 40000) if name == "peername" else default

    return make_mocked_request("GET", "/slack/install", headers=headers, transport=Transport())


@pytest.mark.parametrize(
    ("peer", "forwarded", "hops", "expected"),
    [
        ("192.0.2.1", ("198.51.100.9",), 0, "192.0.2.1"),  # no proxy trusted: header ignored
        ("10.0.0.2", ("6.6.6.6, 198.51.100.9",), 1, "198.51.100.9"),  # the client's claim ignored
        ("10.0.0.2", ("6.6.6.6", "198.51.100.9, 10.0.0.3"), 2, "198.51.100.9"),
        ("10.0.0.2", ("198.51.100.9",), 2, "198.51.100.9"),  # fewer entries than hops
        ("10.0.0.2", (), 1, "10.0.0.2"),
        ("10.0.0.2", ("not-an-address",), 1, "10.0.0.2"),
        ("2001:db8:1:2:3:4:5:6", (), 0, "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.7", (), 0, "192.0.2.7"),
    ],
)
def test_the_client_address(
    peer: str, forwarded: tuple[str, ...], hops: int, expected: str
) -> None:
    assert client_address(request(peer, *forwarded), proxy_hops=hops) == expected  # type: ignore[arg-type]


def test_each_address_gets_its_own_bucket_refilled_over_a_minute() -> None:
    now = [0.0]
    limiter = AddressLimiter(6, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(6)] == [None] * 6
    assert limiter.acquire("a") == 10  # one every ten seconds
    assert limiter.acquire("b") is None
    now[0] = 10.0
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None


def test_the_table_of_addresses_is_bounded_and_zero_means_no_limit() -> None:
    limiter = AddressLimiter(1, max_addresses=100)
    for number in range(1000):
        limiter.acquire(f"10.0.{number // 250}.{number % 250}")
    assert len(limiter) == 100
    unlimited = AddressLimiter(0)
    assert all(unlimited.acquire("a") is None for _ in range(1000))


def test_proxy_hops_must_be_a_small_count() -> None:
    with pytest.raises(ConfigError, match=r"TRUSTED_PROXY_HOPS is malformed: .*reverse proxies"):
        Settings.from_env({"TRUSTED_PROXY_HOPS": "yes"}, env_file=None)
    assert Settings.from_env({"TRUSTED_PROXY_HOPS": "1"}, env_file=None).trusted_proxy_hops == 1
    with pytest.raises(ConfigError, match="INSTALL_REQUESTS_PER_MINUTE"):
        Settings.from_env({"INSTALL_REQUESTS_PER_MINUTE": "-1"}, env_file=None)
