"""The App Home tab: each person's settings, watches and starred colleagues, published."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.presence import Availability
from bot.slack import blocks
from bot.slack.blocks import PersonView
from bot.slack.preferences import effective_preferences
from bot.store import Store

log = logging.getLogger(__name__)


class Presences(Protocol):
    """Phone availability by Slack user and the extensions behind them (RingCentral's side)."""

    def availability(self, user_id: str) -> tuple[Availability, datetime] | None: ...
    def extension_id_for_number(self, number: str) -> str | None: ...
    def extension_number(self, extension_id: str) -> str | None: ...
    def user_for_email(self, email: str) -> str | None: ...


class Connections(Protocol):
    """Whether a person has connected their status (a user token is known)."""

    async def user_token(self, user_id: str) -> str | None: ...
    async def user_scopes(self, user_id: str) -> frozenset[str] | None: ...


def person_view(presences: Presences, user_id: str) -> PersonView:
    known = presences.availability(user_id)
    if known is None:
        return PersonView(user_id, None)
    return PersonView(user_id, known[0], known[1])


class HomeTab:
    """Builds and publishes one person's App Home."""

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        presences: Presences,
        connections: Connections,
        client: AsyncWebClient,
        install_url: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._presences = presences
        self._connections = connections
        self._client = client
        self._install_url = install_url
        self._clock = clock

    async def publish(self, user_id: str) -> tuple[str, ...]:
        """Publish `user_id`'s Home; returns the colleagues it shows."""
        now = self._clock()
        prefs = await self._store.preferences(self._team_id, user_id)
        views, _reported = await self.watch_views(user_id)
        home = blocks.HomeState(
            me=person_view(self._presences, user_id),
            connected=await self._connections.user_token(user_id) is not None,
            preferences=await effective_preferences(self._store, self._team_id, user_id),
            install_url=self._install_url,
            watches=tuple(views),
            starred=tuple(person_view(self._presences, s) for s in prefs.starred),
        )
        try:
            await self._client.views_publish(user_id=user_id, view=blocks.home_view(home, now=now))
        except SlackApiError as exc:
            log.warning("views.publish for %s failed: %s", user_id, exc.response.get("error"))
        return prefs.starred

    async def watch_views(self, user_id: str) -> tuple[list[blocks.WatchView], list[int]]:
        """The person's watches as shown, and the ids of expired ones now reported to them."""
        views: list[blocks.WatchView] = []
        reported: list[int] = []
        for watch in await self._store.watches_for(self._team_id, user_id):
            expired = watch.state == "expired"
            views.append(blocks.WatchView(watch.target_id, watch.expires_at, expired))
            if expired:
                reported.append(watch.id)
        return views, reported
