"""The log of availability changes other systems see: the stream replays it, webhooks read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, true

from bot.store import schema
from bot.store.base import StoreBase


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    at: datetime
    user_id: str
    data: dict[str, Any]


class EventRepository(StoreBase):
    """Availability events, by id; old ones pruned by age and by count."""

    async def append_event(
        self, team_id: str, at: datetime, user_id: str, data: dict[str, Any]
    ) -> int:
        events = schema.api_events
        async with self._transaction("recording an availability change") as conn:
            made = await conn.execute(
                insert(events)
                .values(team_id=team_id, at=at, user_id=user_id, data=json.dumps(data))
                .returning(events.c.id)
            )
            return int(made.scalar_one())

    async def events_after(self, team_id: str, after_id: int, limit: int) -> list[StoredEvent]:
        events = schema.api_events
        async with self._transaction("reading availability changes") as conn:
            rows = await conn.execute(
                select(events)
                .where(events.c.team_id == team_id, events.c.id > after_id)
                .order_by(events.c.id)
                .limit(limit)
            )
            return [StoredEvent(r.id, r.at, r.user_id, json.loads(r.data)) for r in rows]

    async def latest_event_id(self, team_id: str) -> int:
        events = schema.api_events
        async with self._transaction("reading the latest availability change") as conn:
            found = await conn.execute(
                select(func.max(events.c.id)).where(events.c.team_id == team_id)
            )
            return int(found.scalar_one() or 0)

    async def prune_events(self, before: datetime, *, keep_at_most: int) -> int:
        """Delete events older than `before`, and the oldest beyond `keep_at_most`; never one
        that an enabled webhook endpoint has not turned into deliveries yet (its cursor)."""
        events, hooks = schema.api_events, schema.webhooks
        async with self._transaction("pruning availability changes") as conn:
            # Webhook fan-out moves each cursor or disables the endpoint, so this floor moves.
            floor = await conn.scalar(
                select(func.min(hooks.c.event_cursor)).where(hooks.c.enabled.is_(True))
            )
            kept = events.c.id <= floor if floor is not None else true()
            removed = await conn.execute(delete(events).where(events.c.at < before, kept))
            count = removed.rowcount or 0
            newest = (await conn.execute(select(func.max(events.c.id)))).scalar_one()
            if newest is not None and newest > keep_at_most:
                removed = await conn.execute(
                    delete(events).where(events.c.id <= newest - keep_at_most, kept)
                )
                count += removed.rowcount or 0
            return count
