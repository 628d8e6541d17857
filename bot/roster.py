"""Pure: each linked person's extension and last known presence, and what changed for whom."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.presence import Availability, Presence, PresenceBook, PresenceUpdate


@dataclass(frozen=True, slots=True)
class PersonChange:
    """One person's availability changed, or their link to an extension did.

    `new` is None when nothing is known for them any more: unlinked, or linked to an extension
    that has never reported. `since` is when `new` began (for an unlinking, when it was taken in).
    """

    user_id: str
    extension_id: str | None
    old: Availability | None
    new: Availability | None
    since: datetime
    presence: Presence | None


class RosterView(Protocol):
    """What consumers read at the moment they act; only the coordinator changes a roster (on a
    follower replica, `bot.replicas.follower.FollowerPresence`)."""

    def presence_of(self, user_id: str) -> Presence | None: ...
    def extension_of(self, user_id: str) -> str | None: ...
    def user_of(self, extension_id: str) -> str | None: ...
    def linked_people(self) -> Iterator[str]: ...


def availability_of(view: RosterView, user_id: str) -> Availability | None:
    """The person's availability, or None when unlinked or never reported."""
    presence = view.presence_of(user_id)
    return presence.availability if presence is not None else None


def busy_since(presence: Presence) -> datetime:
    """When the current stretch began: the call's start while on one, else the class's start."""
    return presence.on_call_since or presence.availability_since


class Roster:
    """The last known presence of every extension and the person each one belongs to.

    Rules:
    - a person has at most one extension and an extension at most one person;
    - an update to an unlinked extension is kept (a later link shows it at once) but concerns
      nobody, so it yields no change;
    - linking someone yields a change from unknown to the extension's availability, unlinking a
      change to unknown, so consumers act on links exactly as on presence.
    """

    __slots__ = ("_book", "_extension_of", "_user_of")

    def __init__(self, *, book: PresenceBook | None = None) -> None:
        self._book = book if book is not None else PresenceBook()
        self._extension_of: dict[str, str] = {}
        self._user_of: dict[str, str] = {}

    # ----------------------------------------------------------------------------- changes

    def apply(self, update: PresenceUpdate) -> tuple[bool, PersonChange | None]:
        """Merge `update` (see `PresenceBook`): whether the availability moved, and for whom."""
        transition = self._book.apply(update)
        if transition is None:
            return False, None
        user_id = self._user_of.get(update.extension_id)
        if user_id is None:
            return True, None
        return True, PersonChange(
            user_id,
            update.extension_id,
            transition.old,
            transition.new,
            transition.since,
            transition.presence,
        )

    def restore(self, presences: Iterable[Presence]) -> int:
        """Stored presence at start-up, without changes (see `PresenceBook.restore`)."""
        return self._book.restore(presences)

    def adopt(self, presence: Presence) -> PersonChange | None:
        """Take `presence` as its extension's state whatever came before (see
        `PresenceBook.adopt`); a change when a linked person's availability moved."""
        previous = self._book.adopt(presence)
        old = _class(previous)
        user_id = self._user_of.get(presence.extension_id)
        if user_id is None or old is presence.availability:
            return None
        return PersonChange(
            user_id,
            presence.extension_id,
            old,
            presence.availability,
            presence.availability_since,
            presence,
        )

    def remove(self, extension_id: str, *, at: datetime) -> PersonChange | None:
        """Forget a deleted extension; its person, if any, becomes unknown."""
        removed = self._book.remove(extension_id)
        user_id = self._user_of.get(extension_id)
        if removed is None or user_id is None:
            return None
        return PersonChange(user_id, extension_id, removed.availability, None, at, None)

    def forget_sequences(self) -> None:
        self._book.forget_sequences()

    def set_links(self, links: Mapping[str, str], *, at: datetime) -> list[PersonChange]:
        """Replace every link (Slack user id → extension id); one change per person it moves."""
        changes: list[PersonChange] = []
        moved: dict[str, Availability | None] = {}
        for user_id, extension_id in list(self._extension_of.items()):
            if links.get(user_id) != extension_id:
                old = _class(self._book.get(extension_id))
                del self._extension_of[user_id]
                self._user_of.pop(extension_id, None)
                if user_id in links:
                    moved[user_id] = old
                else:
                    changes.append(PersonChange(user_id, None, old, None, at, None))
        for user_id, extension_id in links.items():
            if self._extension_of.get(user_id) == extension_id:
                continue
            self._extension_of[user_id] = extension_id
            self._user_of[extension_id] = user_id
            presence = self._book.get(extension_id)
            since = presence.availability_since if presence is not None else at
            changes.append(
                PersonChange(
                    user_id, extension_id, moved.get(user_id), _class(presence), since, presence
                )
            )
        return changes

    # ----------------------------------------------------------------------------- reading

    def presence_of(self, user_id: str) -> Presence | None:
        extension_id = self._extension_of.get(user_id)
        return self._book.get(extension_id) if extension_id is not None else None

    def extension_of(self, user_id: str) -> str | None:
        return self._extension_of.get(user_id)

    def user_of(self, extension_id: str) -> str | None:
        return self._user_of.get(extension_id)

    def linked_people(self) -> Iterator[str]:
        return iter(tuple(self._extension_of))

    def presence(self, extension_id: str) -> Presence | None:
        """Any extension's last known presence, linked or not."""
        return self._book.get(extension_id)

    def presences(self) -> Iterator[Presence]:
        return self._book.presences()

    @property
    def extensions_known(self) -> int:
        return len(self._book)

    @property
    def people_linked(self) -> int:
        return len(self._extension_of)


def _class(presence: Presence | None) -> Availability | None:
    return presence.availability if presence is not None else None
