"""One-shot "tell me when they are free" watches: added, extended, fired once, expired, reported."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, overload

from sqlalchemy import ColumnElement, Row, and_, case, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import schema
from bot.store.base import StoreBase, chunks
from bot.store.records import Watch

WATCHES_LOCK_CLASS: Final = 0x72637377
"""First key of the per-watcher advisory lock that makes the watch limit atomic on PostgreSQL."""


class WatchRepository(StoreBase):
    """Watches: one active per (watcher, target); fired (see the DM outbox) or expired once."""

    async def _lock_watcher(self, conn: AsyncConnection, team_id: str, watcher_id: str) -> None:
        await self._serialise(conn, WATCHES_LOCK_CLASS, f"{team_id}/{watcher_id}")

    @overload
    async def add_watch(
        self,
        team_id: str,
        watcher_id: str,
        target_id: str,
        expires_at: datetime,
        *,
        busy_since: datetime | None = None,
        limit: None = None,
    ) -> Watch: ...

    @overload
    async def add_watch(
        self,
        team_id: str,
        watcher_id: str,
        target_id: str,
        expires_at: datetime,
        *,
        busy_since: datetime | None = None,
        limit: int,
    ) -> Watch | None: ...

    async def add_watch(
        self,
        team_id: str,
        watcher_id: str,
        target_id: str,
        expires_at: datetime,
        *,
        busy_since: datetime | None = None,
        limit: int | None = None,
    ) -> Watch | None:
        """Start watching, or extend the active watch on the same person (never shortens it).

        With `limit`, None means the watcher already has that many active watches on others:
        the count and the insert are one transaction under a per-watcher lock, so concurrent
        requests cannot exceed it. Extending a watch is always allowed.
        """
        table = schema.watches
        statement = self._insert(table).values(
            team_id=team_id,
            watcher_id=watcher_id,
            target_id=target_id,
            created_at=self._clock(),
            expires_at=expires_at,
            state="active",
            busy_since=busy_since,
        )
        later = case(
            (statement.excluded.expires_at > table.c.expires_at, statement.excluded.expires_at),
            else_=table.c.expires_at,
        )
        async with self._transaction("saving a watch") as conn:
            if limit is not None:
                await self._lock_watcher(conn, team_id, watcher_id)
                held = await conn.execute(
                    select(table.c.target_id).where(
                        table.c.team_id == team_id,
                        table.c.watcher_id == watcher_id,
                        table.c.state == "active",
                    )
                )
                targets = set(held.scalars())
                if target_id not in targets and len(targets) >= limit:
                    return None
            result = await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[table.c.team_id, table.c.watcher_id, table.c.target_id],
                    # A literal, not a bound value: PostgreSQL must see it matches the index.
                    index_where=text("state = 'active'"),
                    set_={
                        "expires_at": later,
                        "busy_since": func.coalesce(
                            table.c.busy_since, statement.excluded.busy_since
                        ),
                    },
                ).returning(*table.c)
            )
            return _watch(result.one())

    async def cancel_watch(self, team_id: str, watcher_id: str, target_id: str) -> bool:
        """Cancel the active watch; False if there was none."""
        table = schema.watches
        async with self._transaction("cancelling a watch") as conn:
            result = await conn.execute(
                update(table)
                .where(
                    table.c.team_id == team_id,
                    table.c.watcher_id == watcher_id,
                    table.c.target_id == target_id,
                    table.c.state == "active",
                )
                .values(state="cancelled")
            )
            return result.rowcount > 0

    async def watch(self, watch_id: int) -> Watch | None:
        table = schema.watches
        async with self._transaction("reading a watch") as conn:
            row = (await conn.execute(select(table).where(table.c.id == watch_id))).first()
            return _watch(row) if row is not None else None

    async def watches_for(self, team_id: str, watcher_id: str) -> list[Watch]:
        """The watcher's active watches and the expired ones not yet reported to them."""
        table = schema.watches
        pending_report = and_(table.c.state == "expired", table.c.expiry_reported_at.is_(None))
        return await self._watches(
            and_(
                table.c.team_id == team_id,
                table.c.watcher_id == watcher_id,
                or_(table.c.state == "active", pending_report),
            )
        )

    async def watches_on(self, team_id: str, target_id: str) -> list[Watch]:
        """Active, unexpired watches on the target: whom to tell when they are free."""
        table = schema.watches
        return await self._watches(
            and_(
                table.c.team_id == team_id,
                table.c.target_id == target_id,
                table.c.state == "active",
                table.c.expires_at > self._clock(),
            )
        )

    async def watched_targets(self, team_id: str) -> set[str]:
        """Everyone with at least one active watch on them (the notifier's index)."""
        table = schema.watches
        async with self._transaction("reading who is watched") as conn:
            rows = await conn.execute(
                select(table.c.target_id)
                .distinct()
                .where(table.c.team_id == team_id, table.c.state == "active")
            )
            return set(rows.scalars())

    async def active_watch_count(self, team_id: str, watcher_id: str) -> int:
        table = schema.watches
        async with self._transaction("counting watches") as conn:
            found = await conn.execute(
                select(func.count())
                .select_from(table)
                .where(
                    table.c.team_id == team_id,
                    table.c.watcher_id == watcher_id,
                    table.c.state == "active",
                )
            )
            return int(found.scalar_one())

    async def expire_watches(self, now: datetime | None = None) -> list[Watch]:
        """Expire every active watch whose time is up; returns those this call expired."""
        table = schema.watches
        moment = now if now is not None else self._clock()
        async with self._transaction("expiring watches") as conn:
            result = await conn.execute(
                update(table)
                .where(table.c.state == "active", table.c.expires_at <= moment)
                .values(state="expired")
                .returning(*table.c)
            )
            expired = [_watch(row) for row in result]
        return sorted(expired, key=lambda watch: watch.id)

    async def mark_expiry_reported(self, watch_ids: Sequence[int]) -> None:
        """The watchers have been told these watches expired."""
        table = schema.watches
        now = self._clock()
        async with self._transaction("marking watch expiries reported") as conn:
            for batch in chunks(list(watch_ids)):
                await conn.execute(
                    update(table)
                    .where(table.c.id.in_(batch), table.c.expiry_reported_at.is_(None))
                    .values(expiry_reported_at=now)
                )

    async def _watches(self, where: ColumnElement[bool]) -> list[Watch]:
        table = schema.watches
        async with self._transaction("reading watches") as conn:
            rows = await conn.execute(select(table).where(where).order_by(table.c.id))
            return [_watch(row) for row in rows]


def _watch(row: Row[Any]) -> Watch:
    return Watch(
        id=row.id,
        team_id=row.team_id,
        watcher_id=row.watcher_id,
        target_id=row.target_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=row.state,
        busy_since=row.busy_since,
        fired_at=row.fired_at,
        expiry_reported_at=row.expiry_reported_at,
    )
