"""Each person's choices (sync, policy, wording, stars) and each workspace's default wording."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Unpack

from sqlalchemy import Row, and_, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.policy import StatusPolicy
from bot.store import schema
from bot.store.base import StoreBase
from bot.store.records import (
    STATUS_POLICIES,
    PreferenceChanges,
    Preferences,
    WorkspaceDefaultChanges,
    WorkspaceDefaults,
)

CONTROL_COLUMNS: Final = (
    "sync_meetings",
    "snooze",
    "huddle_busy",
    "call_types",
    "external_call_text",
    "internal_call_text",
    "inbound_call_text",
    "outbound_call_text",
)
"""Switches and wording a person and their workspace both have; None defers to the next."""
_PREFERENCE_COLUMNS: Final = frozenset(
    {
        *CONTROL_COLUMNS,
        "sync_enabled",
        "paused",
        "policy",
        "call_text",
        "call_emoji",
        "meeting_text",
        "meeting_emoji",
        "disconnected_notified_at",
        "share",
    }
)
STARS_LOCK_CLASS: Final = 0x72637373
"""First key of the per-person advisory lock that makes the star limit atomic on PostgreSQL."""
_DEFAULT_COLUMNS: Final = frozenset(
    {"call_text", "call_emoji", "meeting_text", "meeting_emoji", *CONTROL_COLUMNS}
)


class PreferenceRepository(StoreBase):
    """Per-person preferences and stars, per-workspace default wording."""

    async def preferences(self, team_id: str, user_id: str) -> Preferences:
        """The person's preferences; the defaults for someone who never changed any."""
        async with self._transaction("reading preferences") as conn:
            return await self._read_preferences(conn, team_id, user_id)

    async def update_preferences(
        self, team_id: str, user_id: str, **changes: Unpack[PreferenceChanges]
    ) -> Preferences:
        """Change the named fields (None resets a text or emoji to the default); returns all."""
        unknown = set(changes) - _PREFERENCE_COLUMNS - {"starred"}
        if unknown:
            raise TypeError(f"unknown preference fields: {', '.join(sorted(unknown))}")
        if "policy" in changes and changes["policy"] not in STATUS_POLICIES:
            raise ValueError(f"policy must be one of {STATUS_POLICIES}, not {changes['policy']!r}")
        columns: dict[str, Any] = {k: v for k, v in changes.items() if k in _PREFERENCE_COLUMNS}
        starred = changes.get("starred")
        if isinstance(starred, str):
            raise TypeError("starred takes a sequence of Slack user ids, not one string")
        table = schema.preferences
        now = self._clock()
        async with self._transaction("saving preferences") as conn:
            statement = self._insert(table).values(
                team_id=team_id, user_id=user_id, updated_at=now, **columns
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[table.c.team_id, table.c.user_id],
                    set_={**columns, "updated_at": now},
                )
            )
            if starred is not None:
                await self._replace_stars(conn, team_id, user_id, starred)
            return await self._read_preferences(conn, team_id, user_id)

    async def star(self, team_id: str, user_id: str, starred_id: str, *, limit: int) -> bool:
        """Add `starred_id` at the end of the person's board; False when they already follow
        `limit` people. Count and insert are one step, so racing clicks never pass the limit."""
        stars = schema.stars
        async with self._transaction("starring a colleague") as conn:
            await self._serialise(conn, STARS_LOCK_CLASS, f"{team_id}/{user_id}")
            mine = and_(stars.c.team_id == team_id, stars.c.user_id == user_id)
            held = list((await conn.execute(select(stars.c.starred_id).where(mine))).scalars())
            if starred_id in held:
                return True
            if len(held) >= limit:
                return False
            position = (
                await conn.execute(
                    select(func.coalesce(func.max(stars.c.position), -1)).where(mine)
                )
            ).scalar_one()
            await conn.execute(
                insert(stars).values(
                    team_id=team_id, user_id=user_id, starred_id=starred_id, position=position + 1
                )
            )
            return True

    async def unstar(self, team_id: str, user_id: str, starred_id: str) -> None:
        stars = schema.stars
        async with self._transaction("unstarring a colleague") as conn:
            await conn.execute(
                delete(stars).where(
                    stars.c.team_id == team_id,
                    stars.c.user_id == user_id,
                    stars.c.starred_id == starred_id,
                )
            )

    async def _replace_stars(
        self, conn: AsyncConnection, team_id: str, user_id: str, starred: Sequence[str]
    ) -> None:
        stars = schema.stars
        await conn.execute(
            delete(stars).where(stars.c.team_id == team_id, stars.c.user_id == user_id)
        )
        unique = list(dict.fromkeys(starred))
        if unique:
            await conn.execute(
                insert(stars),
                [
                    {"team_id": team_id, "user_id": user_id, "starred_id": star, "position": i}
                    for i, star in enumerate(unique)
                ],
            )

    async def _read_preferences(
        self, conn: AsyncConnection, team_id: str, user_id: str
    ) -> Preferences:
        table, stars = schema.preferences, schema.stars
        row = (
            await conn.execute(
                select(table).where(table.c.team_id == team_id, table.c.user_id == user_id)
            )
        ).first()
        starred = tuple(
            (
                await conn.execute(
                    select(stars.c.starred_id)
                    .where(stars.c.team_id == team_id, stars.c.user_id == user_id)
                    .order_by(stars.c.position)
                )
            ).scalars()
        )
        if row is None:
            return Preferences(team_id, user_id, starred=starred)
        return _row_preferences(team_id, row, starred)

    async def everyone_preferences(self, team_id: str) -> list[Preferences]:
        """Every stored person's preferences in one read, without their stars (for loading)."""
        table = schema.preferences
        async with self._transaction("reading everyone's preferences") as conn:
            rows = await conn.execute(select(table).where(table.c.team_id == team_id))
            return [_row_preferences(team_id, row, ()) for row in rows]

    async def people_not_sharing(self, team_id: str) -> set[str]:
        """Who turned sharing with other systems off: hidden in the API, stream and webhooks."""
        table = schema.preferences
        async with self._transaction("reading who shares presence") as conn:
            rows = await conn.execute(
                select(table.c.user_id).where(table.c.team_id == team_id, table.c.share.is_(False))
            )
            return set(rows.scalars())

    async def workspace_defaults(self, team_id: str) -> WorkspaceDefaults:
        """The workspace's status wording; all None until an admin sets some."""
        table = schema.workspace_defaults
        async with self._transaction("reading workspace defaults") as conn:
            row = (await conn.execute(select(table).where(table.c.team_id == team_id))).first()
        if row is None:
            return WorkspaceDefaults(team_id)
        return WorkspaceDefaults(
            team_id,
            row.call_text,
            row.call_emoji,
            row.meeting_text,
            row.meeting_emoji,
            **_controls(row),
        )

    async def update_workspace_defaults(
        self, team_id: str, **changes: Unpack[WorkspaceDefaultChanges]
    ) -> WorkspaceDefaults:
        unknown = set(changes) - _DEFAULT_COLUMNS
        if unknown:
            raise TypeError(f"unknown workspace default fields: {', '.join(sorted(unknown))}")
        columns: dict[str, Any] = dict(changes)
        table = schema.workspace_defaults
        now = self._clock()
        async with self._transaction("saving workspace defaults") as conn:
            statement = self._insert(table).values(team_id=team_id, updated_at=now, **columns)
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[table.c.team_id], set_={**columns, "updated_at": now}
                )
            )
        return await self.workspace_defaults(team_id)


def _controls(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in CONTROL_COLUMNS}


def _row_preferences(team_id: str, row: Row[Any], starred: tuple[str, ...]) -> Preferences:
    return Preferences(
        team_id=team_id,
        user_id=row.user_id,
        sync_enabled=bool(row.sync_enabled),
        paused=bool(row.paused),
        policy=StatusPolicy(row.policy),
        call_text=row.call_text,
        call_emoji=row.call_emoji,
        meeting_text=row.meeting_text,
        meeting_emoji=row.meeting_emoji,
        starred=starred,
        disconnected_notified_at=row.disconnected_notified_at,
        share=bool(row.share),
        **_controls(row),
    )
