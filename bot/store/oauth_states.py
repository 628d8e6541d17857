"""Bolt's OAuth state store with a bound: expired states are deleted, live ones are capped."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import delete, func, select

from bot.store.engine import FAILURES, failure
from bot.store.records import StoreError

DEFAULT_MAX_LIVE_STATES: Final = 1000
"""Connections in progress at once across the workspace (each lives 10 minutes at most)."""


class OAuthStatesFull(StoreError):
    """Too many connections are in progress; a new one must wait for some to finish or expire."""


class BoundedOAuthStateStore(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's SQLAlchemy state store, whose rows would otherwise never be deleted.

    Every `GET /slack/install` issues a state, so without a bound anyone could grow the table.
    Issuing first deletes the expired states, then refuses once `max_live` are pending.
    """

    def __init__(self, *, max_live: int = DEFAULT_MAX_LIVE_STATES, **options: Any) -> None:
        super().__init__(**options)
        self.max_live = max_live

    async def purge_expired(self) -> int:
        """Delete the states nobody can use any more; returns how many there were."""
        table = self.oauth_states
        # slack_sdk stores naive UTC (TIMESTAMP WITHOUT TIME ZONE); compare in kind.
        now = datetime.now(UTC).replace(tzinfo=None)
        async with self.engine.begin() as conn:
            result = await conn.execute(delete(table).where(table.c.expire_at <= now))
        return int(result.rowcount or 0)

    async def live_count(self) -> int:
        async with self.engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(self.oauth_states))
        return int(count or 0)

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        try:
            await self.purge_expired()
            live = await self.live_count()
        except FAILURES as exc:
            raise failure(self.engine.url, "issuing an OAuth state", exc) from exc
        # Count and insert are separate transactions: concurrent issues may pass the cap by
        # at most their number, which keeps the table bounded all the same.
        if live >= self.max_live:
            raise OAuthStatesFull(
                f"{self.max_live} Slack connections are already in progress; "
                "new ones wait until some finish or expire"
            )
        try:
            state: str = await super().async_issue(*args, **kwargs)
        except FAILURES as exc:
            raise failure(self.engine.url, "issuing an OAuth state", exc) from exc
        return state
