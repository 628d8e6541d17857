"""Direct messages from the bot, and the one-time notice that a person's connection broke."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.store import Store

log = logging.getLogger(__name__)


class DirectMessages:
    """`chat.postMessage` to a person's DM with the bot; a failure is logged, never raised."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def direct_message(
        self, user_id: str, text: str, blocks: list[Any] | None = None
    ) -> bool:
        try:
            await self._client.chat_postMessage(channel=user_id, text=text, blocks=blocks)
        except SlackApiError as exc:
            log.warning("could not DM %s: %s", user_id, exc.response.get("error"))
            return False
        return True


class TokenLostNotice:
    """Tells a person once that their connection broke, and how to reconnect."""

    def __init__(
        self, *, store: Store, messages: DirectMessages, team_id: str, connect_url: str
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
