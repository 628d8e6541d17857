"""Web API clients, each with the retries its calls should get under Slack's rate limits."""

from __future__ import annotations

from typing import Final

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

LONGEST_INLINE_WAIT: Final = 15.0
"""Seconds a call may sleep on Retry-After before its one retry; a longer wait is the caller's."""


class BoundedRateLimitRetry(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry (sleep Retry-After, then call again), for short waits only.

    A long Retry-After is left to the caller: a command reply or a DM must not sit for minutes
    inside one call, and the DM outbox reschedules the message instead.
    """

    def __init__(self, *, max_retry_count: int = 1, longest_wait: float = LONGEST_INLINE_WAIT):
        super().__init__(max_retry_count=max_retry_count)
        self._longest_wait = longest_wait

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        return retry_after(response) <= self._longest_wait


def retry_after(response: HttpResponse) -> float:
    """The Retry-After a 429 carried, in seconds (1 if it carried none or nonsense)."""
    for name, values in response.headers.items():
        if name.lower() != "retry-after":
            continue
        value = values[0] if isinstance(values, list) and values else values
        try:
            return max(0.0, float(str(value)))
        except ValueError:
            return 1.0
    return 1.0


def bot_client(
    base_url: str, session: aiohttp.ClientSession | None, token: str | None = None
) -> AsyncWebClient:
    """For the bot's own calls (DMs, App Home, the directory, Bolt's listeners): a short 429 is
    waited out and retried once, as is a dropped connection."""
    handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(),
        BoundedRateLimitRetry(),
    ]
    return AsyncWebClient(token=token, base_url=base_url, session=session, retry_handlers=handlers)


def profile_client(base_url: str, session: aiohttp.ClientSession) -> AsyncWebClient:
    """For `users.profile.set`: no retry of its own. The status scheduler budgets every write
    and owns 429s (Retry-After), 5xx and dropped connections; a hidden retry here would spend
    budget it does not count and hold its one writer while it sleeps."""
    return AsyncWebClient(base_url=base_url, session=session, retry_handlers=[])
