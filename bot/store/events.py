"""The log of availability changes other systems see: the stream replays it, webhooks read it."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import schema
from bot.store.base import StoreBase

log = logging.getLogger(__name__)


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

    async def append_events(
        self, team_id: str, rows: Sequence[tuple[datetime, str, dict[str, Any]]]
    ) -> list[int]:
        """Record several changes in one transaction; their ids, in the order given."""
        if not rows:
            return []
        events = schema.api_events
        keys = [(user_id, json.dumps(data)) for _, user_id, data in rows]
        params = [
            {"team_id": team_id, "at": at, "user_id": user_id, "data": text}
            for (at, _, _), (user_id, text) in zip(rows, keys, strict=True)
        ]
        async with self._transaction("recording availability changes") as conn:
            # Not `sort_by_parameter_order`: with an autoincrement key SQLAlchemy can only keep
            # that promise one row per statement, a round trip per change. Each row is found by
            # what it holds instead; rows alike in everything get their ids in the order given.
            made = await conn.execute(
                insert(events).returning(events.c.id, events.c.user_id, events.c.data), params
            )
            ids: dict[tuple[str, str], list[int]] = {}
            for event_id, user_id, data in made:
                ids.setdefault((user_id, data), []).append(int(event_id))
        for found in ids.values():
            found.sort(reverse=True)
        return [ids[key].pop() for key in keys]

    async def events_after(self, team_id: str, after_id: int, limit: int) -> list[StoredEvent]:
        async with self._transaction("reading availability changes") as conn:
            return await read_events_after(conn, team_id, after_id, limit)

    async def last_recorded(self, team_id: str) -> dict[str, str]:
        """Each person's availability as their latest recorded change shows it."""
        events = schema.api_events
        latest = (
            select(func.max(events.c.id).label("id"))
            .where(events.c.team_id == team_id)
            .group_by(events.c.user_id)
            .subquery()
        )
        async with self._transaction("reading the last recorded changes") as conn:
            rows = await conn.execute(
                select(events.c.user_id, events.c.data).join(latest, events.c.id == latest.c.id)
            )
            shown: dict[str, str] = {}
            for user_id, data in rows:
                availability = json.loads(data).get("availability")
                if isinstance(availability, str):
                    shown[user_id] = availability
            return shown

    async def latest_event_id(self, team_id: str) -> int:
        async with self._transaction("reading the latest availability change") as conn:
            return await read_latest_event_id(conn, team_id)

    async def prune_events(self, before: datetime, *, keep_at_most: int) -> int:
        """Delete events older than `before`, but never one an enabled webhook endpoint has
        not turned into deliveries yet (its cursor); and, whatever the cursors, the oldest
        beyond `keep_at_most`, the log's hard bound.

        The newest row always stays: SQLite gives a new row the largest id plus one, so an
        emptied table would hand out ids again that clients already hold as Last-Event-ID
        (and receivers as webhook ids), and they would take new events for ones they had.
        """
        events, hooks = schema.api_events, schema.webhooks
        async with self._transaction("pruning availability changes") as conn:
            newest = (await conn.execute(select(func.max(events.c.id)))).scalar_one()
            if newest is None:
                return 0
            # Webhook fan-out moves each cursor or disables the endpoint, so this floor moves.
            floor = await conn.scalar(
                select(func.min(hooks.c.event_cursor)).where(hooks.c.enabled.is_(True))
            )
            kept = events.c.id <= floor if floor is not None else true()
            removed = await conn.execute(
                delete(events).where(events.c.at < before, events.c.id < newest, kept)
            )
            count = removed.rowcount or 0
            if newest > keep_at_most:
                removed = await conn.execute(
                    delete(events).where(events.c.id <= newest - keep_at_most)
                )
                if removed.rowcount and floor is not None and floor <= newest - keep_at_most:
                    log.warning(
                        "the availability log reached its bound of %d changes before every "
                        "webhook endpoint had read it; the slowest misses the oldest",
                        keep_at_most,
                    )
                count += removed.rowcount or 0
            return count


async def read_events_after(
    conn: AsyncConnection, team_id: str, after_id: int, limit: int
) -> list[StoredEvent]:
    """The oldest `limit` events after `after_id`, within the caller's transaction."""
    events = schema.api_events
    rows = await conn.execute(
        select(events)
        .where(events.c.team_id == team_id, events.c.id > after_id)
        .order_by(events.c.id)
        .limit(limit)
    )
    return [StoredEvent(r.id, r.at, r.user_id, json.loads(r.data)) for r in rows]


async def read_latest_event_id(conn: AsyncConnection, team_id: str) -> int:
    """The newest event's id (0 for none), within the caller's transaction."""
    events = schema.api_events
    found = await conn.execute(select(func.max(events.c.id)).where(events.c.team_id == team_id))
    return int(found.scalar_one() or 0)
