"""The status writer's claims: the status a person had before ours, and what we wrote over it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Row, case, select, update

from bot.policy import SlackStatus
from bot.store import schema
from bot.store.base import StoreBase
from bot.store.records import ClaimRecord


class ClaimRepository(StoreBase):
    """Saved statuses: claimed before we write, released when we restore."""

    async def claim(
        self, team_id: str, user_id: str, *, saved: SlackStatus, written: SlackStatus
    ) -> ClaimRecord:
        """Record that we are about to write `written` over the person's `saved` status.

        Call it before the write, so a crash in between still knows what to restore. If we
        already hold a claim, its saved status is kept (the live status is ours by then) and
        only what we wrote changes.
        """
        table = schema.claims
        now = self._clock()
        statement = self._insert(table).values(
            team_id=team_id,
            user_id=user_id,
            saved_text=saved.text,
            saved_emoji=saved.emoji,
            saved_expiration=saved.expiration,
            written_text=written.text,
            written_emoji=written.emoji,
            written_expiration=written.expiration,
            written_at=now,
            claimed_at=now,
            state="claimed",
        )
        held = table.c.state == "claimed"
        keep = {
            name: case((held, table.c[name]), else_=statement.excluded[name])
            for name in ("saved_text", "saved_emoji", "saved_expiration", "claimed_at")
        }
        renew = {
            name: statement.excluded[name]
            for name in (
                "written_text",
                "written_emoji",
                "written_expiration",
                "written_at",
                "state",
            )
        }
        async with self._transaction("saving a status claim") as conn:
            result = await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[table.c.team_id, table.c.user_id], set_={**keep, **renew}
                ).returning(*table.c)
            )
            return _claim(result.one())

    async def update_written(
        self, team_id: str, user_id: str, written: SlackStatus
    ) -> ClaimRecord | None:
        """Record a refreshed status of ours (a new expiration); None if we hold no claim."""
        table = schema.claims
        async with self._transaction("updating a status claim") as conn:
            result = await conn.execute(
                update(table)
                .where(
                    table.c.team_id == team_id,
                    table.c.user_id == user_id,
                    table.c.state == "claimed",
                )
                .values(
                    written_text=written.text,
                    written_emoji=written.emoji,
                    written_expiration=written.expiration,
                    written_at=self._clock(),
                )
                .returning(*table.c)
            )
            row = result.first()
            return _claim(row) if row is not None else None

    async def release(self, team_id: str, user_id: str) -> ClaimRecord | None:
        """End our claim; returns it (with the status to restore), or None if we held none."""
        table = schema.claims
        async with self._transaction("releasing a status claim") as conn:
            result = await conn.execute(
                update(table)
                .where(
                    table.c.team_id == team_id,
                    table.c.user_id == user_id,
                    table.c.state == "claimed",
                )
                .values(state="released")
                .returning(*table.c)
            )
            row = result.first()
            return _claim(row) if row is not None else None

    async def claim_for(self, team_id: str, user_id: str) -> ClaimRecord | None:
        """The person's claim record whatever its state; check `ClaimRecord.active`."""
        table = schema.claims
        async with self._transaction("reading a status claim") as conn:
            row = (
                await conn.execute(
                    select(table).where(table.c.team_id == team_id, table.c.user_id == user_id)
                )
            ).first()
            return _claim(row) if row is not None else None

    async def claims(self, team_id: str) -> list[ClaimRecord]:
        """The workspace's active claims."""
        return await self._active_claims(schema.claims.c.team_id == team_id)

    async def active_claims(self) -> list[ClaimRecord]:
        """Every active claim in every workspace: whom to reconcile at start."""
        return await self._active_claims(None)

    async def _active_claims(self, where: ColumnElement[bool] | None) -> list[ClaimRecord]:
        table = schema.claims
        query = select(table).where(table.c.state == "claimed")
        if where is not None:
            query = query.where(where)
        async with self._transaction("reading status claims") as conn:
            rows = await conn.execute(query.order_by(table.c.team_id, table.c.user_id))
            return [_claim(row) for row in rows]


def _claim(row: Row[Any]) -> ClaimRecord:
    return ClaimRecord(
        team_id=row.team_id,
        user_id=row.user_id,
        saved=SlackStatus(row.saved_text, row.saved_emoji, row.saved_expiration),
        written=SlackStatus(row.written_text, row.written_emoji, row.written_expiration),
        written_at=row.written_at,
        claimed_at=row.claimed_at,
        state=row.state,
    )
