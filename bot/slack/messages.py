"""Direct messages from the bot, one attempt each and how it went; the notice that a link broke."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.store import Store

log = logging.getLogger(__name__)

TRANSIENT: Final = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "fatal_error",
        "internal_error",
        "service_unavailable",
        "request_timeout",
    }
)
"""Slack errors that a later attempt can get past; any other `ok: false` is Slack's final word
(channel_not_found, user_not_found, account_inactive, messages_tab_disabled, ...)."""


class DmOutcome(enum.Enum):
    SENT = "sent"
    RETRY = "retry"
    """Not now (429, 5xx, the network): the same message may go through later."""
    REFUSED = "refused"
    """Never: Slack refused this message for good."""


@dataclass(frozen=True, slots=True)
class DmResult:
    outcome: DmOutcome
    error: str | None = None
    retry_after: float | None = None
    """Slack's Retry-After, when it said how long to wait."""


class DirectMessages:
    """`chat.postMessage` to a person's DM with the bot; a failure is reported, never raised."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def send(self, user_id: str, text: str, blocks: list[Any] | None = None) -> DmResult:
        """One attempt (the client may wait out a short 429 inside it); says how it went."""
        try:
            await self._client.chat_postMessage(channel=user_id, text=text, blocks=blocks)
        except SlackApiError as exc:
            status = exc.response.status_code
            error = str(exc.response.get("error") or f"HTTP {status}")
            if status == 429:
                header = exc.response.headers.get("Retry-After")
                return DmResult(DmOutcome.RETRY, error, _seconds(header))
            if status >= 500 or error in TRANSIENT:
                return DmResult(DmOutcome.RETRY, error)
            return DmResult(DmOutcome.REFUSED, error)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return DmResult(DmOutcome.RETRY, type(exc).__name__)
        return DmResult(DmOutcome.SENT)

    async def direct_message(
        self, user_id: str, text: str, blocks: list[Any] | None = None
    ) -> bool:
        result = await self.send(user_id, text, blocks)
        if result.outcome is not DmOutcome.SENT:
            log.warning("could not DM %s: %s", user_id, result.error)
        return result.outcome is DmOutcome.SENT


def _seconds(header: object) -> float | None:
    try:
        return max(0.0, float(str(header))) if header is not None else None
    except ValueError:
        return None


class Messenger(Protocol):
    async def direct_message(
        self, user_id: str, text: str, blocks: list[Any] | None = None
    ) -> bool: ...


class TokenLostNotice:
    """Tells a person once that their connection broke, and how to reconnect."""

    def __init__(
        self, *, store: Store, messages: Messenger, team_id: str, connect_url: str
    ) -> None:
        self._store = store
        self._messages = messages
        self._team_id = team_id
        self._connect_url = connect_url

    async def token_lost(self, user_id: str) -> None:
        prefs = await self._store.preferences(self._team_id, user_id)
        if prefs.disconnected_notified_at is not None:
            return
        text = (
            "I can no longer update your Slack status from your phone: your connection to "
            f"rcstatus was revoked or expired. Reconnect here: {self._connect_url}"
        )
        if await self._messages.direct_message(user_id, text):
            await self._store.update_preferences(
                self._team_id, user_id, disconnected_notified_at=datetime.now(UTC)
            )

    async def reconnected(self, user_id: str) -> None:
        """A later loss deserves its own notice."""
        prefs = await self._store.preferences(self._team_id, user_id)
        if prefs.disconnected_notified_at is not None:
            await self._store.update_preferences(
                self._team_id, user_id, disconnected_notified_at=None
            )
