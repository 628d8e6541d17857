"""Who may link which extension: own links by email, admins' requests and moves, all audited."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from bot.slack import link_messages as words
from bot.slack.kit import Message
from bot.slack.link_messages import LinkRefusal, RequestReason
from bot.slack.people import SlackPerson
from bot.store import LinkChange, LinkConflict, LinkEvent, Store, TooManyLinkRequests

log = logging.getLogger(__name__)

REQUEST_LIFETIME: Final = timedelta(days=7)
MAX_ADMINS_ASKED: Final = 10
"""Admins DMed about one request: enough to reach someone, few enough not to spam a big org."""

_SLACK_ID: Final = re.compile(r"[UW][A-Z0-9]{1,31}")
_EXTENSION_ID: Final = re.compile(r"[0-9]{1,32}")


class Extensions(Protocol):
    """RingCentral's directory, as linking needs it."""

    def extension_id_for_number(self, number: str) -> str | None: ...
    def extension_number(self, extension_id: str) -> str | None: ...
    def extension_email(self, extension_id: str) -> str | None: ...


class Members(Protocol):
    """The Slack workspace's people: a fresh look at one, and who the admins are."""

    async def lookup(self, user_id: str) -> SlackPerson | None: ...
    def admins(self) -> list[str]: ...


class Messenger(Protocol):
    async def direct_message(
        self, user_id: str, text: str, blocks: list[Any] | None = None
    ) -> bool: ...


class LinkOwner(Protocol):
    """The coordinator, which owns the extension links, told the store's links changed."""

    async def reload_links(self) -> None: ...


class LinkDesk:
    """Every link change goes through here, so that no one's extension is taken from them
    without an admin's explicit action, and everyone whose link changes is told by whom.

    A person may link themselves at once only to an extension nobody holds whose RingCentral
    email is their Slack email; anything else becomes a request that admins approve or deny
    by DM. An admin links anyone to a free extension at once, and moves a held one after
    confirming. Admin rights are checked with Slack at each act, never from a cache.
    """

    def __init__(
        self,
        *,
        store: Store,
        team_id: str,
        extensions: Extensions,
        members: Members,
        messenger: Messenger,
        links: LinkOwner,
        request_lifetime: timedelta = REQUEST_LIFETIME,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._team_id = team_id
        self._extensions = extensions
        self._members = members
        self._messenger = messenger
        self._links = links
        self._request_lifetime = request_lifetime
        self._clock = clock

    async def is_admin(self, user_id: str) -> bool:
        person = await self._members.lookup(user_id)
        return person is not None and (person.is_admin or person.is_owner)

    def _number(self, extension_id: str) -> str:
        return self._extensions.extension_number(extension_id) or extension_id

    # ----------------------------------------------------------------------------- commands

    async def link(self, invoker_id: str, number: str, other: str | None) -> Message:
        """`/rcstatus link [@someone] NUMBER`."""
        subject = other or invoker_id
        invoker = await self._members.lookup(invoker_id)
        admin = invoker is not None and (invoker.is_admin or invoker.is_owner)
        if subject != invoker_id and not admin:
            return words.link_refusal_reply(LinkRefusal.NOT_ADMIN, user_id=subject)
        extension_id = self._extensions.extension_id_for_number(number)
        if extension_id is None:
            return words.link_refusal_reply(LinkRefusal.UNKNOWN_EXTENSION, extension_number=number)
        holder = await self._store.link_for_extension(self._team_id, extension_id)
        if holder is not None and holder.user_id == subject:
            return words.already_linked_reply(subject, number, invoker_id=invoker_id)
        if holder is not None and admin:
            value = f"{subject}:{extension_id}:{holder.user_id}"
            return words.move_prompt(
                subject, number, holder_id=holder.user_id, invoker_id=invoker_id, value=value
            )
        if holder is None and (admin or self._email_matches(invoker, extension_id)):
            try:
                change = await self._store.assign_link(
                    self._team_id, subject, extension_id, actor_id=invoker_id
                )
            except LinkConflict:
                return words.changed_hands_reply(number)
            await self._changed(change)
            return words.linked_reply(subject, number, invoker_id=invoker_id)
        reason = RequestReason.HELD if holder is not None else RequestReason.NOT_THEIR_EMAIL
        return await self._request(
            invoker_id, extension_id, number, holder.user_id if holder else None, reason
        )

    def _email_matches(self, person: SlackPerson | None, extension_id: str) -> bool:
        extension_email = self._extensions.extension_email(extension_id)
        return (
            person is not None
            and person.email is not None
            and extension_email is not None
            and person.email == extension_email
        )

    async def _request(
        self,
        requester_id: str,
        extension_id: str,
        number: str,
        holder_id: str | None,
        reason: RequestReason,
    ) -> Message:
        admins = [a for a in self._members.admins() if a != requester_id][:MAX_ADMINS_ASKED]
        if not admins:
            return words.link_refusal_reply(LinkRefusal.NO_ADMINS, extension_number=number)
        try:
            request = await self._store.request_link(
                self._team_id,
                requester_id,
                extension_id,
                holder_id=holder_id,
                ttl=self._request_lifetime,
            )
        except TooManyLinkRequests:
            log.warning("link request refused: too many requests are waiting for admins")
            return words.link_refusal_reply(LinkRefusal.TOO_MANY_REQUESTS)
        dm = words.request_dm(request, number, reason=reason)
        asked = [a for a in admins if await self._messenger.direct_message(a, dm.text, dm.blocks)]
        log.info("link request %d sent to %d admins", request.id, len(asked))
        return words.request_sent_reply(
            number, reason=reason, holder_id=holder_id, admins=asked or admins
        )

    async def unlink(self, invoker_id: str, other: str | None) -> Message:
        """`/rcstatus unlink [@someone]`."""
        subject = other or invoker_id
        if subject != invoker_id and not await self.is_admin(invoker_id):
            return words.link_refusal_reply(LinkRefusal.NOT_ADMIN, user_id=subject)
        removed = await self._store.remove_link(self._team_id, subject, actor_id=invoker_id)
        if removed is None:
            return words.link_refusal_reply(LinkRefusal.NOT_LINKED, user_id=subject)
        link, event = removed
        await self._links.reload_links()
        if event is not None and subject != invoker_id:
            await self._tell(event, subject)
        number = self._extensions.extension_number(link.extension_id)
        return words.unlinked_reply(subject, number, invoker_id=invoker_id)

    async def notices(self, user_id: str, reply: Message) -> Message:
        """`reply` led by what changed in the person's link since they last heard."""
        taken = await self._store.take_link_notices(self._team_id, user_id)
        return words.with_notices(reply, taken, user_id, self._number, now=self._clock())

    # ----------------------------------------------------------------------------- buttons

    async def move(self, clicker_id: str, value: str, *, confirmed: bool) -> Message:
        """The admin's answer to `move_prompt`."""
        parsed = _move_value(value)
        if parsed is None:
            return words.stale_button_reply()
        subject, extension_id, holder_id = parsed
        number = self._number(extension_id)
        if not confirmed:
            return words.kept_reply(number, holder_id)
        if not await self.is_admin(clicker_id):
            return words.link_refusal_reply(LinkRefusal.NOT_ADMIN, user_id=subject)
        try:
            change = await self._store.assign_link(
                self._team_id, subject, extension_id, actor_id=clicker_id, displace=holder_id
            )
        except LinkConflict:
            return words.changed_hands_reply(number)
        await self._changed(change)
        if change.displaced is None:
            return words.linked_reply(subject, number, invoker_id=clicker_id)
        return words.moved_reply(
            subject, number, displaced_id=change.displaced.user_id, invoker_id=clicker_id
        )

    async def decide(self, clicker_id: str, value: str, *, approve: bool) -> Message:
        """An admin's Approve or Deny on a request DM."""
        if not value.isdigit() or len(value) > 18:
            return words.stale_button_reply()
        if not await self.is_admin(clicker_id):
            return words.link_refusal_reply(LinkRefusal.NOT_ADMIN)
        decision = await self._store.decide_link_request(
            self._team_id, int(value), decider_id=clicker_id, approve=approve
        )
        if decision is None:
            return words.stale_button_reply()
        request = decision.request
        number = self._number(request.extension_id)
        if decision.decided_now:
            if decision.change is not None:
                await self._changed(decision.change)
            elif decision.event is not None:
                await self._tell(decision.event, request.requester_id)
            elif request.state == "stale":
                dm = words.stale_request_dm(request, number)
                await self._messenger.direct_message(request.requester_id, dm.text, dm.blocks)
            log.info("link request %d %s", request.id, request.state)
        displaced = decision.change.displaced if decision.change else None
        return words.decision_reply(
            request,
            number,
            decider_id=clicker_id,
            decided_now=decision.decided_now,
            displaced_id=displaced.user_id if displaced else None,
            now=self._clock(),
        )

    # ----------------------------------------------------------------------------- telling

    async def _changed(self, change: LinkChange) -> None:
        """A link changed: the coordinator reloads, and everyone touched who did not act is
        DMed now (their notice also waits in /rcstatus, in case the DM is missed)."""
        await self._links.reload_links()
        event = change.event
        if event is None:
            return
        for person in {event.subject_id, event.displaced_id} - {None, event.actor_id}:
            if person is not None:
                await self._tell(event, person)

    async def _tell(self, event: LinkEvent, user_id: str) -> None:
        dm = words.event_dm(event, user_id, self._extensions.extension_number)
        await self._messenger.direct_message(user_id, dm.text, dm.blocks)


def _move_value(value: str) -> tuple[str, str, str] | None:
    """`subject:extension:holder` from our own button; anything else is refused."""
    parts = value.split(":")
    if len(parts) != 3:
        return None
    subject, extension_id, holder_id = parts
    if not (
        _SLACK_ID.fullmatch(subject)
        and _EXTENSION_ID.fullmatch(extension_id)
        and _SLACK_ID.fullmatch(holder_id)
    ):
        return None
    return subject, extension_id, holder_id
