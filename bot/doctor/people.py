"""The people check: how Slack people and RingCentral users pair up, and who is left out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from bot.config import Settings
from bot.doctor.database import StoredState
from bot.doctor.report import Finding, Section, count, names
from bot.ringcentral.directory import Extension
from bot.slack.people import SlackPerson

LINK_FIX: Final = "`/rcstatus link @user 101` or fix the email in RingCentral"


@dataclass(frozen=True, slots=True)
class Coverage:
    """How Slack people and RingCentral users pair up, as the bot would link them at start."""

    linked: dict[str, str]
    """Slack user id → extension id."""
    manual: int
    unmatched: list[SlackPerson]
    """Slack people with no extension of their email and no link by hand."""
    nobody: list[Extension]
    """Enabled RingCentral users nobody in Slack is linked to."""
    shared_slack_emails: dict[str, list[SlackPerson]]
    """An email several Slack people have: its extension goes to none of them."""
    shared_rc_emails: dict[str, list[Extension]]
    """An email several extensions have: only the first is ever linked."""


def coverage(
    people: Iterable[SlackPerson],
    extensions: Iterable[Extension],
    manual_links: Mapping[str, str],
) -> Coverage:
    """Match by email, case-insensitively, with links made by hand taking precedence."""
    people = list(people)
    extensions = list(extensions)
    by_id = {e.id: e for e in extensions}
    rc_by_email: dict[str, list[Extension]] = {}
    for extension in extensions:
        if extension.email:
            rc_by_email.setdefault(extension.email, []).append(extension)
    slack_by_email: dict[str, list[SlackPerson]] = {}
    for person in people:
        if person.email:
            slack_by_email.setdefault(person.email, []).append(person)
    held_by_hand = {ext: user for user, ext in manual_links.items() if ext in by_id}

    linked: dict[str, str] = {}
    manual = 0
    unmatched: list[SlackPerson] = []
    for person in people:
        by_hand = manual_links.get(person.id)
        if by_hand is not None and by_hand in by_id:
            linked[person.id] = by_hand
            manual += 1
            continue
        matches = rc_by_email.get(person.email, []) if person.email else []
        if not matches:
            unmatched.append(person)
            continue
        extension_id = matches[0].id
        shared = len(slack_by_email.get(person.email or "", [])) > 1
        if not shared and extension_id not in held_by_hand:
            linked[person.id] = extension_id
    taken = set(linked.values())
    return Coverage(
        linked=linked,
        manual=manual,
        unmatched=unmatched,
        nobody=[e for e in extensions if e.id not in taken],
        shared_slack_emails={e: ps for e, ps in slack_by_email.items() if len(ps) > 1},
        shared_rc_emails={e: xs for e, xs in rc_by_email.items() if len(xs) > 1},
    )


def check_people(
    settings: Settings,
    *,
    extensions: list[Extension] | None,
    people: list[SlackPerson] | None,
    team_id: str | None,
    state: StoredState | None,
) -> list[Finding]:
    """How people would be linked at start and who is left out; skipped without either list."""
    section = Section("People")
    if extensions is None or people is None or team_id is None:
        needs = [
            what
            for what, missing in (
                ("RingCentral's user list", extensions is None),
                ("Slack's people list", people is None),
            )
            if missing
        ]
        section.skipped(f"mapping not checked: it needs {' and '.join(needs)} (see above)")
        return section.findings
    manual_links = state.manual_links.get(team_id, {}) if state else {}
    found = coverage(people, extensions, manual_links)
    by_hand = f", {found.manual} by hand" if found.manual else ""
    section.ok(
        f"{len(found.linked)} of {count(len(people), 'Slack person', 'Slack people')} "
        f"linked to a RingCentral extension{by_hand}"
    )
    if found.unmatched:
        section.warning(
            f"{count(len(found.unmatched), 'Slack person has', 'Slack people have')} no "
            f"RingCentral extension with their email: {names(_who(p) for p in found.unmatched)}",
            LINK_FIX,
        )
    if found.nobody:
        section.warning(
            f"{count(len(found.nobody), 'RingCentral user has', 'RingCentral users have')} "
            f"nobody in Slack with their email: {names(_extension(e) for e in found.nobody)}",
            "fine if they are not on Slack; otherwise fix the email or "
            "`/rcstatus link @user <extension>`",
        )
    for email, sharing in sorted(found.shared_slack_emails.items()):
        section.warning(
            f"{len(sharing)} Slack people share the email {email}, so none of them is linked",
            f"give each their own email in Slack, or {LINK_FIX.split(' or ', 1)[0]}",
        )
    for email, sharing_rc in sorted(found.shared_rc_emails.items()):
        section.warning(
            f"{count(len(sharing_rc), 'extension')} share the email {email}: "
            f"{names(e.number for e in sharing_rc)}; only {sharing_rc[0].number} can be linked",
            "give each user their own email in RingCentral (Admin Portal → Users)",
        )
    _check_connected(section, settings, found, state, team_id)
    return section.findings


def _check_connected(
    section: Section,
    settings: Settings,
    found: Coverage,
    state: StoredState | None,
    team_id: str,
) -> None:
    if settings.slack_admin_user_token is not None:
        section.ok("statuses are written with SLACK_ADMIN_USER_TOKEN: connecting is optional")
        return
    if state is None:
        section.skipped("connections not counted: the database could not be read (see above)")
        return
    if not found.linked:
        return
    connected = state.connected.get(team_id, set()) & set(found.linked)
    if not connected:
        section.warning(
            f"none of the {len(found.linked)} linked people has connected, so no status changes",
            "each person runs `/rcstatus connect` once (or presses Connect in the App Home)",
        )
        return
    section.ok(f"{len(connected)} of {len(found.linked)} linked people have connected")


def _who(person: SlackPerson) -> str:
    return person.email or f"{person.name} (no email)"


def _extension(extension: Extension) -> str:
    return f"{extension.number} {extension.name}".strip()
