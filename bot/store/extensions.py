"""RingCentral's extension listing as the leader last read it, shared with the other replicas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from sqlalchemy import delete, select

from bot.store import schema
from bot.store.base import StoreBase, chunks


class StoredExtension(NamedTuple):
    id: str
    number: str
    name: str
    email: str | None


class ExtensionRepository(StoreBase):
    """The whole listing, replaced at once (a few thousand short rows)."""

    async def replace_extensions(self, extensions: Sequence[StoredExtension]) -> None:
        table = schema.extensions
        rows = [extension._asdict() for extension in extensions]
        async with self._transaction("saving the extension listing") as conn:
            await conn.execute(delete(table))
            for batch in chunks(rows):
                await conn.execute(table.insert(), list(batch))

    async def stored_extensions(self) -> list[StoredExtension]:
        table = schema.extensions
        async with self._transaction("reading the extension listing") as conn:
            rows = await conn.execute(
                select(table.c.id, table.c.number, table.c.name, table.c.email).order_by(table.c.id)
            )
            return [StoredExtension(row.id, row.number, row.name, row.email) for row in rows]
