"""Links are owned: nobody takes another person's extension without an admin, through the sims."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Bot
from bot.presence import Availability
from bot.sim.company import Person
from bot.slack.link_messages import LINK_APPROVE_ACTION, LINK_DENY_ACTION, LINK_MOVE_ACTION
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, running_bot, simulators


@pytest.fixture
async def bot_and_sims(tmp_path: Path) -> AsyncIterator[tuple[Bot, Sims]]:
    async with simulators() as sims, running_bot(sims, tmp_path / "bot.db") as bot:
        yield bot, sims


def shown(outcome: dict[str, Any]) -> str:
    """What the person sees in the last reply: fallback text and blocks."""
    responses = outcome.get("responses") or []
    assert responses, outcome
    last = responses[-1]
    return last.get("text", "") + json.dumps(last.get("blocks") or [], ensure_ascii=False)


async def rcstatus(sims: Sims, person: Person, text: str) -> str:
    assert person.slack_id is not None
    outcome = await sims.slack.send_command(
        person.slack_id, "/rcstatus", text, wait=5.0, expect_responses=1
    )
    return shown(outcome)


async def click(sims: Sims, person: Person, action_id: str) -> str:
    assert person.slack_id is not None
    return shown(await sims.slack.click(person.slack_id, action_id, expect_responses=1))


def dms(sims: Sims, person: Person) -> list[str]:
    return [m["text"] for m in sims.slack.messages(user=person.slack_id, kind="dm")]


def roles(sims: Sims) -> tuple[Person, Person, list[Person]]:
    owner, admin = sims.company.people[0], sims.company.people[1]
    assert (owner.slack_role, admin.slack_role) == ("owner", "admin")
    members = [p for p in sims.people() if p.slack_role == "member"]
    return owner, admin, members


def at(person: Person) -> str:
    return f"<@{person.slack_id}>"


async def extension_of(bot: Bot, person: Person) -> str | None:
    link = await bot.store.link_for_user(bot.team_id, str(person.slack_id))
    return link.extension_id if link is not None else None


async def test_a_member_cannot_take_an_extension_and_it_moves_only_when_an_admin_approves(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    bot, sims = bot_and_sims
    owner, admin, members = roles(sims)
    taker, victim = members[0], members[1]
    assert victim.extension_number is not None

    asked = await rcstatus(sims, taker, f"link {victim.extension_number}")
    assert f"linked to {at(victim)}" in asked
    assert "nothing changes until" in asked
    assert await extension_of(bot, victim) == str(victim.extension_id)
    assert await extension_of(bot, taker) == str(taker.extension_id)
    # The victim's phone still drives the victim's availability, and only theirs.
    sims.call(victim, "connected")
    await wait_until(lambda: bot.availability(str(victim.slack_id)) is Availability.ON_CALL)
    assert bot.availability(str(taker.slack_id)) is Availability.AVAILABLE
    sims.call(victim, "ended")

    for each in (owner, admin):
        await wait_until(
            lambda each=each: any("asks to be linked" in text for text in dms(sims, each)),
            message="the request reaches every admin",
        )
        request = [text for text in dms(sims, each) if "asks to be linked" in text]
        assert at(taker) in request[0]
        assert f"extension {victim.extension_number}" in request[0]

    approved = await click(sims, admin, LINK_APPROVE_ACTION)
    assert f"Approved: {at(taker)} is now linked to extension {victim.extension_number}" in (
        approved
    )
    assert await extension_of(bot, taker) == str(victim.extension_id)
    assert await extension_of(bot, victim) is None
    await wait_until(
        lambda: any(at(admin) in text for text in dms(sims, victim)),
        message="the displaced person is told who moved their extension",
    )
    told = next(text for text in dms(sims, victim) if at(admin) in text)
    assert f"{at(taker)}'s request for extension {victim.extension_number}" in told
    assert "which was linked to you" in told
    await wait_until(lambda: any("approved your request" in text for text in dms(sims, taker)))

    # /rcstatus tells the displaced person too, once.
    first = await rcstatus(sims, victim, "")
    assert "Your extension link changed" in first
    assert at(admin) in first
    assert "Your extension link changed" not in await rcstatus(sims, victim, "")

    # The other admin's copy of the request is already answered.
    late = await click(sims, owner, LINK_APPROVE_ACTION)  # the owner's copy of the request
    assert f"{at(admin)} already approved" in late

    trail = await bot.store.link_events(bot.team_id)
    assert [(e.action, e.actor_id, e.subject_id, e.displaced_id) for e in trail[:2]] == [
        ("approved", admin.slack_id, taker.slack_id, victim.slack_id),
        ("requested", taker.slack_id, taker.slack_id, victim.slack_id),
    ]


async def test_a_denied_request_changes_nothing_and_the_requester_is_told(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    bot, sims = bot_and_sims
    owner, _, members = roles(sims)
    taker, victim = members[0], members[1]
    await rcstatus(sims, taker, f"link {victim.extension_number}")
    await wait_until(lambda: any("asks to be linked" in text for text in dms(sims, owner)))
    denied = await click(sims, owner, LINK_DENY_ACTION)
    assert f"You denied {at(taker)}'s request" in denied
    assert await extension_of(bot, victim) == str(victim.extension_id)
    assert await extension_of(bot, taker) == str(taker.extension_id)
    await wait_until(lambda: any("didn't approve" in text for text in dms(sims, taker)))
    assert not any(at(owner) in text for text in dms(sims, victim))


async def test_an_admin_moves_a_held_extension_in_one_confirmed_step(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    bot, sims = bot_and_sims
    owner, _, members = roles(sims)
    newcomer, holder = members[2], members[3]

    prompt = await rcstatus(sims, owner, f"link {at(newcomer)} {holder.extension_number}")
    assert f"Extension {holder.extension_number} is linked to {at(holder)}" in prompt
    assert await extension_of(bot, holder) == str(holder.extension_id)  # asked, not done

    moved = await click(sims, owner, LINK_MOVE_ACTION)
    assert f"moved from {at(holder)} to {at(newcomer)}" in moved
    assert await extension_of(bot, newcomer) == str(holder.extension_id)
    assert await extension_of(bot, holder) is None
    await wait_until(lambda: any(at(owner) in text for text in dms(sims, holder)))
    told = next(text for text in dms(sims, holder) if at(owner) in text)
    assert f"moved extension {holder.extension_number} from you to {at(newcomer)}" in told
    await wait_until(
        lambda: any(f"{at(owner)} linked you to extension" in text for text in dms(sims, newcomer))
    )
    # The phone now drives the newcomer's availability.
    sims.call(holder, "connected")
    await wait_until(lambda: bot.availability(str(newcomer.slack_id)) is Availability.ON_CALL)
    assert bot.availability(str(holder.slack_id)) is None


async def test_ones_own_extension_by_email_links_at_once_and_any_other_needs_an_admin(
    bot_and_sims: tuple[Bot, Sims],
) -> None:
    bot, sims = bot_and_sims
    _, _, members = roles(sims)
    person = members[4]
    assert "no longer linked" in await rcstatus(sims, person, "unlink")
    assert await extension_of(bot, person) is None
    relinked = await rcstatus(sims, person, f"link {person.extension_number}")
    assert f"You're now linked to extension {person.extension_number}" in relinked
    assert await extension_of(bot, person) == str(person.extension_id)

    spare = next(p for p in sims.company.people if p.extension_id and not p.slack_id)
    asked = await rcstatus(sims, person, f"link {spare.extension_number}")
    assert "isn't registered to your email address" in asked
    assert await extension_of(bot, person) == str(person.extension_id)
    refused = await rcstatus(sims, person, f"unlink {at(members[5])}")
    assert "Only workspace admins" in refused
    assert await extension_of(bot, members[5]) == str(members[5].extension_id)
