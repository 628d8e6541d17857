"""DMs waiting for Slack to accept them: queued (with the watch they fire), claimed, done."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import schema
from bot.store.base import StoreBase

log = logging.getLogger(__name__)

OUTBOX_LIMIT: Final = 10_000
"""DMs waiting per workspace; past it new ones are refused (and logged) rather than piling up."""
ERROR_LENGTH: Final = 64


@dataclass(frozen=True, slots=True)
class PendingDm:
    """One DM in the outbox."""

    id: int
    team_id: str
    user_id: str
    text: str
    blocks: list[Any] | None
    watch_id: int | None
    created_at: datetime
    due_at: datetime
    """When it may be tried next; while one sender holds it, the end of that sender's lease."""
    give_up_at: datetime
    attempts: int
    last_error: str | None


class OutboxRepository(StoreBase):
    """The DM outbox: each row is claimed by one sender at a time and leaves it exactly once."""

    async def fire_watch(
        self,
        watch_id: int,
        *,
        text: str,
        blocks: list[Any] | None,
        now: datetime,
        give_up_at: datetime,
        limit: int = OUTBOX_LIMIT,
    ) -> bool:
        """Queue an active watch's DM and mark the watch sending, in one transaction.

        False if the watch is no longer active (another replica or an earlier pass fired it, or
        it was cancelled) or the outbox is full. The watch becomes fired only when the DM is
        sent (`dm_sent`).
        """
        watches = schema.watches
        async with self._transaction("firing a watch") as conn:
            found = await conn.execute(
                select(watches.c.team_id, watches.c.watcher_id).where(
                    watches.c.id == watch_id, watches.c.state == "active"
                )
            )
            row = found.first()
            if row is None or not await self._has_room(conn, row.team_id, limit):
                return False
            moved = await conn.execute(
                update(watches)
                .where(watches.c.id == watch_id, watches.c.state == "active")
                .values(state="sending")
            )
            if moved.rowcount != 1:
                return False  # fired by a replica between our read and this update
            await self._enqueue(
                conn, row.team_id, row.watcher_id, text, blocks, now, give_up_at, watch_id
            )
            return True

    async def enqueue_dm(
        self,
        team_id: str,
        user_id: str,
        text: str,
        blocks: list[Any] | None = None,
        *,
        now: datetime,
        give_up_at: datetime,
        limit: int = OUTBOX_LIMIT,
    ) -> bool:
        """Queue a DM that fires no watch; False if the outbox is full."""
        async with self._transaction("queueing a DM") as conn:
            if not await self._has_room(conn, team_id, limit):
                return False
            await self._enqueue(conn, team_id, user_id, text, blocks, now, give_up_at, None)
            return True

    async def due_dms(self, team_id: str, now: datetime, limit: int = 50) -> list[PendingDm]:
        """DMs whose next attempt is due, oldest due first."""
        table = schema.dm_outbox
        async with self._transaction("reading due DMs") as conn:
            rows = await conn.execute(
                select(table)
                .where(table.c.team_id == team_id, table.c.due_at <= now)
                .order_by(table.c.due_at, table.c.id)
                .limit(limit)
            )
            return [_pending(row) for row in rows]

    async def next_dm_due(self, team_id: str) -> datetime | None:
        table = schema.dm_outbox
        async with self._transaction("reading the next DM due") as conn:
            found = await conn.execute(
                select(func.min(table.c.due_at)).where(table.c.team_id == team_id)
            )
            value: datetime | None = found.scalar_one()
            return value

    async def pending_dm_count(self, team_id: str) -> int:
        async with self._transaction("counting DMs") as conn:
            return await self._size(conn, team_id)

    async def claim_dm(self, dm_id: int, now: datetime, lease_until: datetime) -> PendingDm | None:
        """Take a due DM for one attempt; None if it is not due (another sender holds it)."""
        table = schema.dm_outbox
        async with self._transaction("claiming a DM") as conn:
            result = await conn.execute(
                update(table)
                .where(table.c.id == dm_id, table.c.due_at <= now)
                .values(due_at=lease_until, attempts=table.c.attempts + 1)
                .returning(*table.c)
            )
            row = result.first()
            return _pending(row) if row is not None else None

    async def dm_sent(self, dm_id: int, now: datetime) -> None:
        """Slack accepted it: the row leaves, and the watch it fired is fired, together."""
        await self._finish(dm_id, "fired", now, "recording a sent DM")

    async def dm_dropped(self, dm_id: int, now: datetime) -> None:
        """Slack refused it for good, or its time ran out: the row leaves, its watch expires."""
        await self._finish(dm_id, "expired", now, "dropping a DM")

    async def dm_retry_at(self, dm_id: int, due_at: datetime, error: str | None) -> None:
        table = schema.dm_outbox
        async with self._transaction("rescheduling a DM") as conn:
            await conn.execute(
                update(table)
                .where(table.c.id == dm_id)
                .values(due_at=due_at, last_error=(error or "")[:ERROR_LENGTH] or None)
            )

    async def _finish(self, dm_id: int, watch_state: str, now: datetime, doing: str) -> None:
        table, watches = schema.dm_outbox, schema.watches
        async with self._transaction(doing) as conn:
            result = await conn.execute(
                delete(table).where(table.c.id == dm_id).returning(table.c.watch_id)
            )
            watch_id = result.scalar_one_or_none()
            if watch_id is None:
                return
            values: dict[str, Any] = {"state": watch_state}
            if watch_state == "fired":
                values["fired_at"] = now
            await conn.execute(
                update(watches)
                .where(watches.c.id == watch_id, watches.c.state == "sending")
                .values(**values)
            )

    async def _has_room(self, conn: AsyncConnection, team_id: str, limit: int) -> bool:
        if await self._size(conn, team_id) < limit:
            return True
        log.warning("the DM outbox holds %d messages; a new DM was not queued", limit)
        return False

    async def _size(self, conn: AsyncConnection, team_id: str) -> int:
        table = schema.dm_outbox
        found = await conn.execute(
            select(func.count()).select_from(table).where(table.c.team_id == team_id)
        )
        return int(found.scalar_one())

    async def _enqueue(
        self,
        conn: AsyncConnection,
        team_id: str,
        user_id: str,
        text: str,
        blocks: list[Any] | None,
        now: datetime,
        give_up_at: datetime,
        watch_id: int | None,
    ) -> None:
        await conn.execute(
            insert(schema.dm_outbox).values(
                team_id=team_id,
                user_id=user_id,
                text=text,
                blocks=json.dumps(blocks) if blocks is not None else None,
                watch_id=watch_id,
                created_at=now,
                due_at=now,
                give_up_at=give_up_at,
                attempts=0,
            )
        )


def _pending(row: Row[Any]) -> PendingDm:
    return PendingDm(
        id=row.id,
        team_id=row.team_id,
        user_id=row.user_id,
        text=row.text,
        blocks=json.loads(row.blocks) if row.blocks is not None else None,
        watch_id=row.watch_id,
        created_at=row.created_at,
        due_at=row.due_at,
        give_up_at=row.give_up_at,
        attempts=row.attempts,
        last_error=row.last_error,
    )
