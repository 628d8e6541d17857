"""Which Slack user is which RingCentral extension, per workspace: links, requests, audit trail."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Row, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import schema
from bot.store.base import StoreBase, chunks
from bot.store.records import (
    LINK_SOURCES,
    AutoLinkConflict,
    AutoLinkReport,
    Link,
    LinkAction,
    LinkChange,
    LinkConflict,
    LinkDecision,
    LinkEvent,
    LinkRequest,
    LinkRequestState,
    LinkSource,
    TooManyLinkRequests,
)

log = logging.getLogger(__name__)

LINKS_LOCK_CLASS: Final = 0x72637374
"""First key of the per-workspace advisory lock that serialises link changes on PostgreSQL."""
MAX_PENDING_REQUESTS: Final = 200
"""Open link requests a workspace may hold: bounds the table and admins' DMs."""
CLOSED_REQUEST_RETENTION: Final = timedelta(days=30)
EVENT_RETENTION: Final = timedelta(days=400)
"""How long the audit trail of link changes is kept: a year and a bit, for yearly reviews."""
NOTICES_PER_PERSON: Final = 5


class LinkRepository(StoreBase):
    """Links: at most one extension per Slack user and one Slack user per extension, per team."""

    async def _lock_links(self, conn: AsyncConnection, team_id: str) -> None:
        await self._serialise(conn, LINKS_LOCK_CLASS, team_id)

    async def link(self, team_id: str, user_id: str, extension_id: str, source: LinkSource) -> Link:
        """Link a Slack user to an extension nobody else holds, replacing the user's own link.

        Raises LinkConflict if another user holds the extension, whatever either link's
        source: only `assign_link`, on an admin's explicit say-so, moves a link from one person
        to another. An automatic link never replaces the user's manual link: the manual link is
        returned unchanged. A manual link made here is its owner's own act, and audited as such.
        """
        if source not in LINK_SOURCES:
            raise ValueError(f"source must be one of {LINK_SOURCES}, not {source!r}")
        if source == "manual":
            change = await self.assign_link(team_id, user_id, extension_id, actor_id=user_id)
            return change.link
        async with self._transaction("linking an extension") as conn:
            await self._lock_links(conn, team_id)
            current, holder = await self._current(conn, team_id, user_id, extension_id)
            if current is not None and current.source == "manual":
                return current
            if holder is not None:
                raise LinkConflict(extension_id, holder)
            if current is not None and current.extension_id == extension_id:
                return current
            return await self._write_link(conn, team_id, user_id, extension_id, "auto")

    async def assign_link(
        self,
        team_id: str,
        user_id: str,
        extension_id: str,
        *,
        actor_id: str,
        displace: str | None = None,
        request_id: int | None = None,
    ) -> LinkChange:
        """Give `user_id` a manual link to the extension, as `actor_id`'s act, audited.

        `displace` names the person the actor knowingly takes the extension from; if anyone
        else holds it (or `displace` is None and anyone holds it) LinkConflict is raised and
        nothing changes. The subject, and anyone displaced, get a notice unless they acted.
        """
        async with self._transaction("linking an extension") as conn:
            await self._lock_links(conn, team_id)
            return await self._assign(
                conn, team_id, user_id, extension_id, actor_id, displace, request_id
            )

    async def _assign(
        self,
        conn: AsyncConnection,
        team_id: str,
        user_id: str,
        extension_id: str,
        actor_id: str,
        displace: str | None,
        request_id: int | None,
        action: LinkAction = "linked",
    ) -> LinkChange:
        links = schema.links
        current, holder = await self._current(conn, team_id, user_id, extension_id)
        if holder is not None and holder.user_id != displace:
            raise LinkConflict(extension_id, holder)
        if (
            current is not None
            and current.extension_id == extension_id
            and current.source == "manual"
        ):
            return LinkChange(current, current, None, None)
        if holder is not None:
            await conn.execute(
                delete(links).where(links.c.team_id == team_id, links.c.user_id == holder.user_id)
            )
        linked = await self._write_link(conn, team_id, user_id, extension_id, "manual")
        event = await self._record(
            conn,
            team_id,
            action,
            actor_id=actor_id,
            subject_id=user_id,
            extension_id=extension_id,
            displaced_id=holder.user_id if holder is not None else None,
            request_id=request_id,
        )
        if holder is not None:
            log.info("extension %s moved from one person to another by an admin", extension_id)
        return LinkChange(linked, current, holder, event)

    async def _current(
        self, conn: AsyncConnection, team_id: str, user_id: str, extension_id: str
    ) -> tuple[Link | None, Link | None]:
        """The user's own link, and the link of whoever else holds the extension."""
        links = schema.links
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
        return current, holder

    async def _write_link(
        self,
        conn: AsyncConnection,
        team_id: str,
        user_id: str,
        extension_id: str,
        source: LinkSource,
    ) -> Link:
        links = schema.links
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

    async def unlink(
        self, team_id: str, user_id: str, *, actor_id: str | None = None
    ) -> Link | None:
        """Remove the user's link, as `actor_id`'s act (default: their own); returns the link
        that was removed."""
        removed = await self.remove_link(team_id, user_id, actor_id=actor_id or user_id)
        return removed[0] if removed is not None else None

    async def remove_link(
        self, team_id: str, user_id: str, *, actor_id: str
    ) -> tuple[Link, LinkEvent | None] | None:
        """Remove the user's link as `actor_id`'s act: the link removed and its audit entry
        (None for a person dropping their own automatic link, which email matching owns)."""
        links = schema.links
        async with self._transaction("unlinking an extension") as conn:
            await self._lock_links(conn, team_id)
            removed = await conn.execute(
                delete(links)
                .where(links.c.team_id == team_id, links.c.user_id == user_id)
                .returning(*links.c)
            )
            row = removed.first()
            if row is None:
                return None
            link = _link(row)
            event = None
            if link.source == "manual" or actor_id != user_id:
                event = await self._record(
                    conn,
                    team_id,
                    "unlinked",
                    actor_id=actor_id,
                    subject_id=user_id,
                    extension_id=link.extension_id,
                )
            return link, event

    # ----------------------------------------------------------------------------- requests

    async def request_link(
        self,
        team_id: str,
        requester_id: str,
        extension_id: str,
        *,
        holder_id: str | None,
        ttl: timedelta,
    ) -> LinkRequest:
        """Open a request for admins to decide, withdrawing the requester's earlier one.

        Raises TooManyLinkRequests when the workspace already has MAX_PENDING_REQUESTS open,
        so that nobody can grow the table or flood admins' DMs without bound.
        """
        requests = schema.link_requests
        now = self._clock()
        async with self._transaction("requesting a link") as conn:
            await self._lock_links(conn, team_id)
            await self._tidy_requests(conn, team_id, now)
            await conn.execute(
                update(requests)
                .where(
                    requests.c.team_id == team_id,
                    requests.c.requester_id == requester_id,
                    requests.c.state == "pending",
                )
                .values(state="withdrawn", decided_by=requester_id, decided_at=now)
            )
            pending = await conn.execute(
                select(func.count())
                .select_from(requests)
                .where(requests.c.team_id == team_id, requests.c.state == "pending")
            )
            if pending.scalar_one() >= MAX_PENDING_REQUESTS:
                raise TooManyLinkRequests(
                    f"{MAX_PENDING_REQUESTS} link requests are already waiting for an admin"
                )
            made = await conn.execute(
                insert(requests)
                .values(
                    team_id=team_id,
                    requester_id=requester_id,
                    extension_id=extension_id,
                    holder_id=holder_id,
                    created_at=now,
                    expires_at=now + ttl,
                    state="pending",
                )
                .returning(*requests.c)
            )
            request = _request(made.one())
            await self._record(
                conn,
                team_id,
                "requested",
                actor_id=requester_id,
                subject_id=requester_id,
                extension_id=extension_id,
                displaced_id=holder_id,
                request_id=request.id,
            )
            return request

    async def link_request(self, team_id: str, request_id: int) -> LinkRequest | None:
        requests = schema.link_requests
        async with self._transaction("reading a link request") as conn:
            row = (
                await conn.execute(
                    select(requests).where(
                        requests.c.team_id == team_id, requests.c.id == request_id
                    )
                )
            ).first()
            return _request(row) if row is not None else None

    async def decide_link_request(
        self, team_id: str, request_id: int, *, decider_id: str, approve: bool
    ) -> LinkDecision | None:
        """An admin's answer; None for a request that does not exist in this workspace.

        Exactly one decision wins however many admins click at once. Approval moves the
        extension only from the person who held it when the request was made: if it changed
        hands since, the request goes "stale" and nothing moves.
        """
        requests = schema.link_requests
        now = self._clock()
        async with self._transaction("deciding a link request") as conn:
            await self._lock_links(conn, team_id)
            row = (
                await conn.execute(
                    select(requests).where(
                        requests.c.team_id == team_id, requests.c.id == request_id
                    )
                )
            ).first()
            if row is None:
                return None
            request = _request(row)
            if request.state == "pending" and request.expires_at <= now:
                request = await self._close(conn, request, "expired", None, request.expires_at)
            if request.state != "pending":
                return LinkDecision(request, None, decided_now=False)
            change: LinkChange | None = None
            event: LinkEvent | None = None
            state: LinkRequestState = "denied"
            if approve:
                try:
                    change = await self._assign(
                        conn,
                        team_id,
                        request.requester_id,
                        request.extension_id,
                        decider_id,
                        request.holder_id,
                        request.id,
                        action="approved",
                    )
                    state = "approved"
                    event = change.event
                except LinkConflict:
                    state = "stale"
            else:
                event = await self._record(
                    conn,
                    team_id,
                    "denied",
                    actor_id=decider_id,
                    subject_id=request.requester_id,
                    extension_id=request.extension_id,
                    request_id=request.id,
                )
            request = await self._close(conn, request, state, decider_id, now)
            return LinkDecision(request, change, decided_now=True, event=event)

    async def _close(
        self,
        conn: AsyncConnection,
        request: LinkRequest,
        state: LinkRequestState,
        decider_id: str | None,
        at: datetime,
    ) -> LinkRequest:
        requests = schema.link_requests
        await conn.execute(
            update(requests)
            .where(requests.c.id == request.id)
            .values(state=state, decided_by=decider_id, decided_at=at)
        )
        return replace(request, state=state, decided_by=decider_id, decided_at=at)

    async def _tidy_requests(self, conn: AsyncConnection, team_id: str, now: datetime) -> None:
        requests = schema.link_requests
        await conn.execute(
            update(requests)
            .where(
                requests.c.team_id == team_id,
                requests.c.state == "pending",
                requests.c.expires_at <= now,
            )
            .values(state="expired", decided_at=now)
        )
        await conn.execute(
            delete(requests).where(
                requests.c.team_id == team_id,
                requests.c.state != "pending",
                requests.c.created_at < now - CLOSED_REQUEST_RETENTION,
            )
        )

    # ----------------------------------------------------------------------------- audit

    async def _record(
        self,
        conn: AsyncConnection,
        team_id: str,
        action: LinkAction,
        *,
        actor_id: str,
        subject_id: str,
        extension_id: str,
        displaced_id: str | None = None,
        request_id: int | None = None,
    ) -> LinkEvent:
        """Audit one change, and leave a notice for each person it touched who did not act."""
        events, notices = schema.link_events, schema.link_notices
        now = self._clock()
        await conn.execute(
            delete(events).where(events.c.team_id == team_id, events.c.at < now - EVENT_RETENTION)
        )
        made = await conn.execute(
            insert(events)
            .values(
                team_id=team_id,
                at=now,
                action=action,
                actor_id=actor_id,
                subject_id=subject_id,
                extension_id=extension_id,
                displaced_id=displaced_id,
                request_id=request_id,
            )
            .returning(events.c.id)
        )
        event = LinkEvent(
            made.scalar_one(),
            team_id,
            now,
            action,
            actor_id,
            subject_id,
            extension_id,
            displaced_id,
            request_id,
        )
        told = {subject_id} if action in ("approved", "denied") else set()
        if action in ("linked", "unlinked", "approved") and actor_id != subject_id:
            told.add(subject_id)
        if displaced_id is not None and action in ("linked", "approved"):
            told.add(displaced_id)
        told.discard(actor_id)
        for user_id in sorted(told):
            await conn.execute(
                insert(notices).values(team_id=team_id, user_id=user_id, event_id=event.id)
            )
            # Only the latest few matter to a person; older ones are in the audit trail.
            kept = (
                select(notices.c.id)
                .where(notices.c.team_id == team_id, notices.c.user_id == user_id)
                .order_by(notices.c.id.desc())
                .limit(NOTICES_PER_PERSON)
            )
            await conn.execute(
                delete(notices).where(
                    notices.c.team_id == team_id,
                    notices.c.user_id == user_id,
                    notices.c.id.not_in(kept.scalar_subquery()),
                )
            )
        return event

    async def take_link_notices(self, team_id: str, user_id: str) -> list[LinkEvent]:
        """The changes to this person's link they have not been told of yet, oldest first;
        taking them clears them."""
        events, notices = schema.link_events, schema.link_notices
        async with self._transaction("reading link notices") as conn:
            rows = await conn.execute(
                select(events)
                .join(notices, notices.c.event_id == events.c.id)
                .where(notices.c.team_id == team_id, notices.c.user_id == user_id)
                .order_by(events.c.id)
            )
            found = [_event(row) for row in rows]
            if found:
                await conn.execute(
                    delete(notices).where(
                        notices.c.team_id == team_id, notices.c.user_id == user_id
                    )
                )
            return found

    async def link_events(self, team_id: str, *, limit: int = 50) -> list[LinkEvent]:
        """The audit trail, newest first."""
        events = schema.link_events
        async with self._transaction("reading the link audit trail") as conn:
            rows = await conn.execute(
                select(events)
                .where(events.c.team_id == team_id)
                .order_by(events.c.id.desc())
                .limit(limit)
            )
            return [_event(row) for row in rows]

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


def _request(row: Row[Any]) -> LinkRequest:
    return LinkRequest(
        id=row.id,
        team_id=row.team_id,
        requester_id=row.requester_id,
        extension_id=row.extension_id,
        holder_id=row.holder_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        state=row.state,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
    )


def _event(row: Row[Any]) -> LinkEvent:
    return LinkEvent(
        id=row.id,
        team_id=row.team_id,
        at=row.at,
        action=row.action,
        actor_id=row.actor_id,
        subject_id=row.subject_id,
        extension_id=row.extension_id,
        displaced_id=row.displaced_id,
        request_id=row.request_id,
    )
