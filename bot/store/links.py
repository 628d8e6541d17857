"""Which Slack user is which RingCentral extension, per workspace; manual links beat automatic."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, and_, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import schema
from bot.store.base import StoreBase, chunks
from bot.store.records import (
    LINK_SOURCES,
    AutoLinkConflict,
    AutoLinkReport,
    Link,
    LinkConflict,
    LinkSource,
)

log = logging.getLogger(__name__)

LINKS_LOCK_CLASS: Final = 0x72637374
"""First key of the per-workspace advisory lock that serialises link changes on PostgreSQL."""


class LinkRepository(StoreBase):
    """Links: at most one extension per Slack user and one Slack user per extension, per team."""

    async def _lock_links(self, conn: AsyncConnection, team_id: str) -> None:
        # SQLite's BEGIN IMMEDIATE already serialises writers; PostgreSQL needs a lock, because
        # a uniqueness check that reads "nobody holds extension 101" cannot lock a missing row.
        if conn.dialect.name == "postgresql":
            key = func.hashtext(team_id)
            await conn.execute(select(func.pg_advisory_xact_lock(LINKS_LOCK_CLASS, key)))

    async def link(self, team_id: str, user_id: str, extension_id: str, source: LinkSource) -> Link:
        """Link a Slack user to an extension, replacing the user's previous link.

        Raises LinkConflict if another user holds the extension, except that a manual link takes
        an extension from an automatic one. An automatic link never replaces the user's manual
        link: the manual link is returned unchanged.
        """
        if source not in LINK_SOURCES:
            raise ValueError(f"source must be one of {LINK_SOURCES}, not {source!r}")
        links = schema.links
        async with self._transaction("linking an extension") as conn:
            await self._lock_links(conn, team_id)
            found = await conn.execute(
                select(links).where(
                    links.c.team_id == team_id,
                    or_(links.c.extension_id == extension_id, links.c.user_id == user_id),
                )
            )
            current: Link | None = None
            holder: Link | None = None
            for row in found:
                existing = _link(row)
                if existing.user_id == user_id:
                    current = existing
                else:
                    holder = existing
            if current is not None and current.source == "manual" and source == "auto":
                return current
            if holder is not None:
                if source == "auto" or holder.source == "manual":
                    raise LinkConflict(extension_id, holder)
                await conn.execute(
                    delete(links).where(
                        links.c.team_id == team_id, links.c.user_id == holder.user_id
                    )
                )
                log.info("extension %s moved from an automatic link to a manual one", extension_id)
            if (
                current is not None
                and current.extension_id == extension_id
                and current.source == source
            ):
                return current
            linked = Link(team_id, user_id, extension_id, source, self._clock())
            statement = self._insert(links).values(
                team_id=team_id,
                user_id=user_id,
                extension_id=extension_id,
                source=source,
                linked_at=linked.linked_at,
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=[links.c.team_id, links.c.user_id],
                    set_={
                        "extension_id": statement.excluded.extension_id,
                        "source": statement.excluded.source,
                        "linked_at": statement.excluded.linked_at,
                    },
                )
            )
            return linked

    async def unlink(self, team_id: str, user_id: str) -> Link | None:
        """Remove the user's link; returns the link that was removed."""
        links = schema.links
        async with self._transaction("unlinking an extension") as conn:
            await self._lock_links(conn, team_id)
            removed = await conn.execute(
                delete(links)
                .where(links.c.team_id == team_id, links.c.user_id == user_id)
                .returning(*links.c)
            )
            row = removed.first()
            return _link(row) if row is not None else None

    async def link_for_user(self, team_id: str, user_id: str) -> Link | None:
        links = schema.links
        return await self._one_link(and_(links.c.team_id == team_id, links.c.user_id == user_id))

    async def link_for_extension(self, team_id: str, extension_id: str) -> Link | None:
        links = schema.links
        return await self._one_link(
            and_(links.c.team_id == team_id, links.c.extension_id == extension_id)
        )

    async def links_for_extension(self, extension_id: str) -> list[Link]:
        """The extension's link in every workspace (one RingCentral account may serve several)."""
        links = schema.links
        return await self._links(links.c.extension_id == extension_id)

    async def links(self, team_id: str) -> list[Link]:
        """Every link in the workspace, by Slack user id."""
        return await self._links(schema.links.c.team_id == team_id)

    async def _one_link(self, where: ColumnElement[bool]) -> Link | None:
        found = await self._links(where)
        return found[0] if found else None

    async def _links(self, where: ColumnElement[bool]) -> list[Link]:
        links = schema.links
        async with self._transaction("reading links") as conn:
            rows = await conn.execute(
                select(links).where(where).order_by(links.c.team_id, links.c.user_id)
            )
            return [_link(row) for row in rows]

    async def replace_auto_links(self, team_id: str, desired: Mapping[str, str]) -> AutoLinkReport:
        """Make the workspace's automatic links exactly `desired` (Slack user → extension).

        Manual links are never touched and their extensions never given away; a user with a
        manual link is skipped. An extension proposed for two users, or held by a manual link,
        goes to nobody and is reported as a conflict. One transaction: readers see the old
        links or the new ones, never a mixture.
        """
        links = schema.links
        async with self._transaction("updating automatic links") as conn:
            await self._lock_links(conn, team_id)
            rows = await conn.execute(select(links).where(links.c.team_id == team_id))
            existing = [_link(row) for row in rows]
            manual_users = {link.user_id for link in existing if link.source == "manual"}
            manual_holders = {
                link.extension_id: link.user_id for link in existing if link.source == "manual"
            }
            auto = {link.user_id: link for link in existing if link.source == "auto"}

            wanted: dict[str, list[str]] = {}
            for user_id, extension_id in desired.items():
                if user_id not in manual_users:
                    wanted.setdefault(extension_id, []).append(user_id)
            target: dict[str, str] = {}
            conflicts: list[AutoLinkConflict] = []
            for extension_id, users in sorted(wanted.items()):
                holder = manual_holders.get(extension_id)
                if holder is not None or len(users) > 1:
                    conflicts.append(AutoLinkConflict(extension_id, tuple(sorted(users)), holder))
                else:
                    target[users[0]] = extension_id

            removed = [link for user, link in auto.items() if target.get(user) != link.extension_id]
            now = self._clock()
            added = [
                Link(team_id, user, extension_id, "auto", now)
                for user, extension_id in sorted(target.items())
                if user not in auto or auto[user].extension_id != extension_id
            ]
            removed_users = [link.user_id for link in removed]
            for batch in chunks(removed_users):
                await conn.execute(
                    delete(links).where(links.c.team_id == team_id, links.c.user_id.in_(batch))
                )
            if added:
                await conn.execute(
                    insert(links),
                    [
                        {
                            "team_id": link.team_id,
                            "user_id": link.user_id,
                            "extension_id": link.extension_id,
                            "source": link.source,
                            "linked_at": link.linked_at,
                        }
                        for link in added
                    ],
                )
        removed.sort(key=lambda link: link.user_id)
        return AutoLinkReport(
            added=tuple(added),
            removed=tuple(removed),
            conflicts=tuple(conflicts),
            unchanged=len(target) - len(added),
        )


def _link(row: Row[Any]) -> Link:
    return Link(row.team_id, row.user_id, row.extension_id, row.source, row.linked_at)
