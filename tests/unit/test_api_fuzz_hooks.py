"""The fuzz run's URL rewrite: webhook URLs go to the test's receiver, and stay as (in)valid."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.webhooks.safety import URL_LIMIT, URL_PATTERN, UnsafeUrl, check_url
from tests.integration.api_fuzz_hooks import local_url

RECEIVER = "127.0.0.1:45678"


def _valid(url: str) -> bool:
    try:
        check_url(url, allow_private=True)
    except UnsafeUrl:
        return False
    return True


@given(st.from_regex(URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= URL_LIMIT))
def test_a_url_the_bot_would_reach_goes_to_the_receiver_and_stays_valid(url: str) -> None:
    local = local_url(url, RECEIVER)
    assert _valid(local)
    assert urlsplit(local).netloc == RECEIVER
    assert urlsplit(local).scheme == urlsplit(url).scheme


@given(st.text(max_size=60) | st.text(max_size=60).map(lambda tail: "https://" + tail))
def test_anything_else_is_left_as_it_is(value: str) -> None:
    if _valid(value):
        assert urlsplit(local_url(value, RECEIVER)).netloc == RECEIVER
    else:
        assert local_url(value, RECEIVER) == value


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://8.8.8.8/hook?x=1#f", f"https://{RECEIVER}/hook?x=1#f"),
        ("HTTP://[2001:db8::1]:8443", f"HTTP://{RECEIVER}"),
        ("https://a" + "/" * (URL_LIMIT - 9), f"https://{RECEIVER}" + "/" * (URL_LIMIT - 23)),
        ("https://user@example.com/", "https://user@example.com/"),
        ("https://example.com:0/", "https://example.com:0/"),
        (" https://example.com/", " https://example.com/"),
    ],
)
def test_examples(url: str, expected: str) -> None:
    assert local_url(url, RECEIVER) == expected
