"""RingCentral's session between runs: one opaque, already-encrypted blob, named by owner."""

from __future__ import annotations

from sqlalchemy import delete, insert, select

from bot.store import schema
from bot.store.base import StoreBase


class RcSessionRepository(StoreBase):
    """At most one row: saving a session forgets every other (an old app's or credential's)."""

    async def rc_session(self, owner: str) -> str | None:
        """The blob saved for `owner` (a digest naming the app and credential), if any."""
        table = schema.rc_sessions
        async with self._transaction("reading RingCentral's session") as conn:
            row = (await conn.execute(select(table.c.data).where(table.c.id == owner))).first()
            return str(row.data) if row is not None else None

    async def save_rc_session(self, owner: str, data: str) -> None:
        table = schema.rc_sessions
        async with self._transaction("saving RingCentral's session") as conn:
            await conn.execute(delete(table))
            await conn.execute(insert(table).values(id=owner, data=data, updated_at=self._clock()))

    async def forget_rc_session(self) -> None:
        async with self._transaction("forgetting RingCentral's session") as conn:
            await conn.execute(delete(schema.rc_sessions))
