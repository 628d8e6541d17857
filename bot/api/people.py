"""The people resource: who a reference names, and what other systems may know of them."""

from __future__ import annotations

import re
from collections.abc import Container, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Protocol

from bot.presence import Availability
from bot.roster import RosterView
from bot.slack.people import SlackPerson

_SLACK_USER: Final = re.compile(r"[UW][A-Z0-9]{2,31}")
_DIGITS: Final = re.compile(r"[0-9]{1,20}")
REF_LIMIT: Final = 254
"""The longest reference worth reading: the longest email address."""


class ApiAvailability(StrEnum):
    """What the API says; the bot's classes plus `unknown` (not linked, or nothing heard)."""

    AVAILABLE = "available"
    RINGING = "ringing"
    ON_CALL = "on_call"
    IN_MEETING = "in_meeting"
    DND = "dnd"
    BUSY = "busy"
    OFFLINE = "offline"
    HIDDEN = "hidden"
    UNKNOWN = "unknown"


class SlackDirectory(Protocol):
    def get(self, user_id: str) -> SlackPerson | None: ...
    def by_email(self, email: str) -> SlackPerson | None: ...
    def __iter__(self) -> Iterator[SlackPerson]: ...


class ExtensionRecord(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def number(self) -> str | None: ...
    @property
    def email(self) -> str | None: ...


class ExtensionDirectory(Protocol):
    def by_id(self, extension_id: str) -> ExtensionRecord | None: ...
    def by_number(self, number: str) -> ExtensionRecord | None: ...


@dataclass(frozen=True, slots=True)
class PersonState:
    """One person as the API shows them at one moment."""

    slack_user_id: str
    email: str | None
    name: str | None
    extension_id: str | None
    extension_number: str | None
    availability: ApiAvailability
    since: datetime | None
    on_call_since: datetime | None

    @property
    def reachable(self) -> bool:
        """Whether a call put through now would be answered by a free person."""
        return self.availability is ApiAvailability.AVAILABLE

    def as_json(self) -> dict[str, Any]:
        return {
            "slack_user_id": self.slack_user_id,
            "email": self.email,
            "name": self.name,
            "extension_id": self.extension_id,
            "extension_number": self.extension_number,
            "availability": self.availability.value,
            "since": rfc3339(self.since),
            "on_call_since": rfc3339(self.on_call_since),
            "reachable": self.reachable,
        }


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class PeopleView:
    """Resolves references and builds each person's state from memory (roster and directories).

    Privacy is decided here and nowhere else: a person whose RingCentral presence is not
    visible, or who turned sharing off, is `hidden`, with no times that could betray a call.
    """

    def __init__(
        self, *, roster: RosterView, slack: SlackDirectory, extensions: ExtensionDirectory
    ) -> None:
        self._roster = roster
        self._slack = slack
        self._extensions = extensions

    def resolve(self, ref: str) -> str | None:
        """The Slack user a reference names: a Slack id, an email, an extension id or number."""
        ref = ref.strip()
        if not ref or len(ref) > REF_LIMIT:
            return None
        if _SLACK_USER.fullmatch(ref):
            known = self._slack.get(ref) is not None or self._roster.extension_of(ref) is not None
            return ref if known else None
        if "@" in ref:
            person = self._slack.by_email(ref)
            return person.id if person is not None else None
        if _DIGITS.fullmatch(ref):
            extension = self._extensions.by_id(ref) or self._extensions.by_number(ref)
            return self._roster.user_of(extension.id) if extension is not None else None
        return None

    def everyone(self) -> list[str]:
        """Every Slack person and every linked person, by Slack user id."""
        return sorted({p.id for p in self._slack} | set(self._roster.linked_people()))

    def state(self, user_id: str, not_sharing: Container[str]) -> PersonState:
        person = self._slack.get(user_id)
        extension_id = self._roster.extension_of(user_id)
        extension = self._extensions.by_id(extension_id) if extension_id is not None else None
        presence = self._roster.presence_of(user_id)
        availability = ApiAvailability.UNKNOWN
        since = on_call_since = None
        if presence is not None:
            shown = presence.availability
            if shown is Availability.HIDDEN or user_id in not_sharing:
                availability = ApiAvailability.HIDDEN
            else:
                availability = ApiAvailability(shown.value)
                since = presence.availability_since
                if shown is Availability.ON_CALL:
                    on_call_since = presence.on_call_since or presence.availability_since
        return PersonState(
            slack_user_id=user_id,
            email=person.email if person is not None else None,
            name=person.name if person is not None else None,
            extension_id=extension_id,
            extension_number=extension.number if extension is not None else None,
            availability=availability,
            since=since,
            on_call_since=on_call_since,
        )
