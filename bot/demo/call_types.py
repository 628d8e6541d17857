"""The demo's opening act: an external inbound and an internal outbound call, worded by type."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bot.demo.workload import Actor
from bot.sim.company import Company, Person
from bot.sim.ringcentral import RingCentralSimulator
from bot.sim.slack import SlackSimulator

DEADLINE: Final = 30.0
"""Seconds each status may take to show (the call debounce and a write, with room to spare)."""
EXTERNAL_INBOUND: Final = "On an incoming external call"
INTERNAL_OUTBOUND: Final = "On an outgoing internal call"


@dataclass(frozen=True, slots=True)
class Cast:
    """Who shows it: an admin turns it on, one person takes a call, one calls a colleague."""

    admin: Person
    caller: Person
    dialler: Person
    colleague: Person

    @property
    def detailed_extensions(self) -> str:
        """RC_DETAILED_EXTENSIONS: call direction and party come from detailed presence only."""
        return ",".join(str(p.extension_id) for p in (self.caller, self.dialler))

    def people(self) -> tuple[Person, Person]:
        return self.caller, self.dialler


def cast_for(company: Company) -> Cast | None:
    """Members with an enabled extension and Slack, and an admin; None in too small a company."""
    both = [
        p
        for p in company.people
        if p.slack_id is not None and p.extension_id is not None and p.extension_status == "Enabled"
    ]
    admins = [p for p in both if p.slack_role in ("admin", "owner")]
    members = [p for p in both if p.slack_role == "member" and p.extension_number]
    if not admins or len(members) < 3:
        return None
    return Cast(admins[0], members[0], members[1], members[2])


async def show_call_types(
    cast: Cast,
    actors: list[Actor],
    *,
    rc: RingCentralSimulator,
    slack: SlackSimulator,
    note: Callable[[str, str], None],
) -> list[str]:
    """Turn wording by call type on, show both calls, then put the workspace back as it was."""
    by_person = {id(actor.person): actor for actor in actors}
    caller, dialler = by_person[id(cast.caller)], by_person[id(cast.dialler)]
    admin = str(cast.admin.slack_id)
    await slack.send_command(
        admin, "/rcstatus", "admin defaults calltypes on", wait=5.0, expect_responses=1
    )
    note("An admin turns on wording by call type: /rcstatus admin defaults calltypes on", "bold")
    rc.call(caller.extension_id, "connected", direction="Inbound")
    rc.call(
        dialler.extension_id,
        "connected",
        direction="Outbound",
        peer_number=str(cast.colleague.extension_number),
    )
    note(f"{caller.name} takes a call from outside the company", "red")
    note(f"{dialler.name} calls extension {cast.colleague.extension_number}", "red")
    shown = []
    for actor, words in ((caller, EXTERNAL_INBOUND), (dialler, INTERNAL_OUTBOUND)):
        await _until(slack, actor, words)
        note(f"{actor.name}'s Slack status: {words}", "green")
        shown.append(f"{actor.name}: {words}")
    for actor in (caller, dialler):
        rc.call(actor.extension_id, "ended")
    for actor in (caller, dialler):
        await _until(slack, actor, "")
    await slack.send_command(
        admin, "/rcstatus", "admin defaults calltypes default", wait=5.0, expect_responses=1
    )
    note("…and back to the usual wording for the rest of the day.", "bold")
    return shown


def _status(slack: SlackSimulator, actor: Actor) -> str:
    return str(slack.user(actor.slack_id)["status_text"])


async def _until(slack: SlackSimulator, actor: Actor, words: str) -> None:
    """Until the actor's Slack status says `words` (empty: no status)."""
    deadline = time.monotonic() + DEADLINE
    while _status(slack, actor) != words:
        if time.monotonic() > deadline:
            raise TimeoutError("the call-type statuses did not show in time")
        await asyncio.sleep(0.05)
