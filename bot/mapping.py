"""Links Slack people to RingCentral extensions by email; reports what it cannot match."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from bot.store import Store
from bot.store.records import AutoLinkReport

log = logging.getLogger(__name__)


class HasEmail(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def email(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class MappingReport:
    team_id: str
    linked: int
    unmatched: tuple[str, ...]
    """Slack people with no RingCentral extension of the same email."""
    conflicts: tuple[str, ...]
    """Extensions more than one Slack person claims by email: linked to nobody."""
    changes: AutoLinkReport | None = field(default=None, repr=False)


async def link_by_email(
    store: Store,
    team_id: str,
    people: Iterable[HasEmail],
    extension_for_email: Callable[[str], str | None],
) -> MappingReport:
    """Replace the workspace's automatic links with the email matches; manual links stay."""
    desired: dict[str, str] = {}
    unmatched: list[str] = []
    for person in people:
        extension_id = extension_for_email(person.email) if person.email else None
        if extension_id is None:
            unmatched.append(person.id)
        else:
            desired[person.id] = extension_id
    report = await store.replace_auto_links(team_id, desired)
    conflicts = tuple(sorted({c.extension_id for c in report.conflicts}))
    if conflicts:
        log.warning(
            "%d RingCentral extensions match more than one Slack person by email; "
            "link them by hand with /rcstatus link",
            len(conflicts),
        )
    linked = len(await store.links(team_id))
    log.info(
        "people linked to RingCentral: %d (%d without a matching extension)",
        linked,
        len(unmatched),
    )
    return MappingReport(team_id, linked, tuple(unmatched), conflicts, report)
