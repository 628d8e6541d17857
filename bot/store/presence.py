"""Last known presence per extension, so a restart knows who was on a call (PresenceMemory)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import delete, select

from bot.presence import (
    CallDirection,
    CallParty,
    DndStatus,
    MeetingStatus,
    Presence,
    PresenceStatus,
    TelephonyStatus,
)
from bot.store import schema
from bot.store.base import StoreBase, chunks

log = logging.getLogger(__name__)

_PRESENCE_ENUMS: Final[Mapping[str, Callable[[str], object]]] = {
    "presence_status": PresenceStatus,
    "user_status": PresenceStatus,
    "telephony_status": TelephonyStatus,
    "aggregated_telephony_status": TelephonyStatus,
    "dnd_status": DndStatus,
    "dnd_status_personal": DndStatus,
    "meeting_status": MeetingStatus,
    "call_direction": CallDirection,
    "call_party": CallParty,
}
_PRESENCE_PLAIN: Final = (
    "extension_id",
    "availability_since",
    "updated_at",
    "allow_see_my_presence",
    "active_calls",
    "on_call_since",
)
PRESENCE_FIELDS: Final = (*_PRESENCE_PLAIN, *_PRESENCE_ENUMS)
"""Every field of a presence row, in one order: the replicas' wire sends them by position."""
PRESENCE_TIMES: Final = frozenset({"availability_since", "updated_at", "on_call_since"})
"""The fields that hold datetimes (aware, UTC)."""
SAVE_BATCH: Final = 5000


class PresenceRepository(StoreBase):
    """Last known presence, upserted in bulk (implements PresenceMemory)."""

    async def load_presence(self) -> Sequence[Presence]:
        """Every stored last known presence (PresenceMemory)."""
        table = schema.presence
        async with self._transaction("loading presence") as conn:
            rows = (await conn.execute(select(table).order_by(table.c.extension_id))).all()
        loaded: list[Presence] = []
        for row in rows:
            try:
                loaded.append(presence_from_row(row._mapping))
            except ValueError:
                # A value an older or newer rcstatus wrote; the first snapshot refills it.
                log.warning("skipped stored presence of extension %s", row.extension_id)
        return loaded

    async def save_presence(self, presences: Sequence[Presence]) -> None:
        """Insert or replace each extension's presence in one transaction (PresenceMemory)."""
        if not presences:
            return
        latest = {p.extension_id: p for p in presences}
        rows = [presence_row(p) for p in latest.values()]
        table = schema.presence
        statement = self._insert(table)
        upsert = statement.on_conflict_do_update(
            index_elements=[table.c.extension_id],
            set_={
                column.name: statement.excluded[column.name]
                for column in table.c
                if column.name != "extension_id"
            },
        )
        async with self._transaction("saving presence") as conn:
            for batch in chunks(rows, SAVE_BATCH):
                await conn.execute(upsert, list(batch))

    async def forget_presence(self, extension_ids: Sequence[str]) -> None:
        """Drop extensions that were deleted or disabled (PresenceMemory)."""
        table = schema.presence
        async with self._transaction("forgetting presence") as conn:
            for batch in chunks(list(extension_ids)):
                await conn.execute(delete(table).where(table.c.extension_id.in_(batch)))


def presence_row(presence: Presence) -> dict[str, Any]:
    """A presence as plain values (enums by value), one per name in PRESENCE_FIELDS."""
    row: dict[str, Any] = {name: getattr(presence, name) for name in _PRESENCE_PLAIN}
    for name in _PRESENCE_ENUMS:
        value = getattr(presence, name)
        row[name] = None if value is None else value.value
    return row


def presence_from_row(values: Mapping[Any, Any]) -> Presence:
    """The inverse of `presence_row`; ValueError for a value no enum knows."""
    fields: dict[str, Any] = {name: values[name] for name in _PRESENCE_PLAIN}
    for name, kind in _PRESENCE_ENUMS.items():
        raw = values[name]
        fields[name] = None if raw is None else kind(raw)
    return Presence(**fields)
