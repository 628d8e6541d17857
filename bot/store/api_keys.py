"""API keys for other systems: stored only as hashes, revocable, with their scopes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, insert, select, update

from bot.store import schema
from bot.store.base import StoreBase
from bot.store.records import ApiKeyRecord


class ApiKeyRepository(StoreBase):
    """Keys by id and by hash; the key itself is never stored."""

    async def add_api_key(
        self, key_id: str, name: str, scopes: tuple[str, ...], key_hash: str
    ) -> ApiKeyRecord:
        record = ApiKeyRecord(key_id, name, scopes, self._clock())
        async with self._transaction("creating an API key") as conn:
            await conn.execute(
                insert(schema.api_keys).values(
                    id=key_id,
                    name=name,
                    scopes=" ".join(scopes),
                    key_hash=key_hash,
                    created_at=record.created_at,
                )
            )
        return record

    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKeyRecord, str] | None:
        """The key whose hash this is, with the stored hash (for a constant-time compare)."""
        keys = schema.api_keys
        async with self._transaction("checking an API key") as conn:
            row = (await conn.execute(select(keys).where(keys.c.key_hash == key_hash))).first()
            return (_record(row), str(row.key_hash)) if row is not None else None

    async def api_keys(self) -> list[ApiKeyRecord]:
        keys = schema.api_keys
        async with self._transaction("listing API keys") as conn:
            rows = await conn.execute(select(keys).order_by(keys.c.created_at, keys.c.id))
            return [_record(row) for row in rows]

    async def revoke_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke the key (at once, for every replica: each request reads the row); None if
        there is no such key. Revoking twice keeps the first time."""
        keys = schema.api_keys
        async with self._transaction("revoking an API key") as conn:
            await conn.execute(
                update(keys)
                .where(keys.c.id == key_id, keys.c.revoked_at.is_(None))
                .values(revoked_at=self._clock())
            )
            row = (await conn.execute(select(keys).where(keys.c.id == key_id))).first()
            return _record(row) if row is not None else None


def _record(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row.id,
        name=row.name,
        scopes=tuple(str(row.scopes).split()),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
