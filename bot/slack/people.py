"""The workspace's people from users.list: ids, emails, roles and the status each profile shows."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.policy import SlackStatus

log = logging.getLogger(__name__)

MAX_LIST_WAITS: Final = 60
"""Rate-limit waits one directory read sits out before it gives up (an hour at the most)."""


def _retry_after(headers: Any) -> float:
    try:
        return min(60.0, max(1.0, float(headers.get("Retry-After", 30))))
    except (TypeError, ValueError):
        return 30.0


@dataclass(frozen=True, slots=True)
class SlackPerson:
    id: str
    team_id: str
    name: str
    email: str | None
    is_admin: bool
    is_owner: bool
    status: SlackStatus

    @classmethod
    def from_member(cls, member: dict[str, Any], team_id: str) -> SlackPerson | None:
        """A human member, or None for bots, Slackbot and deactivated accounts."""
        if member.get("deleted") or member.get("is_bot") or member.get("id") == "USLACKBOT":
            return None
        user_id = member.get("id")
        if not isinstance(user_id, str):
            return None
        raw_profile = member.get("profile")
        profile: dict[str, Any] = raw_profile if isinstance(raw_profile, dict) else {}
        email = profile.get("email")
        return cls(
            id=user_id,
            team_id=str(member.get("team_id") or team_id),
            name=str(profile.get("real_name") or member.get("real_name") or member.get("name")),
            email=email.strip().casefold() if isinstance(email, str) and email.strip() else None,
            is_admin=bool(member.get("is_admin")),
            is_owner=bool(member.get("is_owner")),
            status=status_of(profile),
        )


def status_of(profile: dict[str, Any]) -> SlackStatus:
    expiration = profile.get("status_expiration")
    return SlackStatus(
        text=str(profile.get("status_text") or ""),
        emoji=str(profile.get("status_emoji") or ""),
        # JSON from Python's reader may carry NaN or Infinity, which int() refuses.
        expiration=int(expiration)
        if isinstance(expiration, int | float) and math.isfinite(expiration)
        else 0,
    )


class SlackPeople:
    """Everyone in one workspace, read with users.list (Tier 2, so in pages of 1,000)."""

    def __init__(self, client: AsyncWebClient, team_id: str) -> None:
        self._client = client
        self.team_id = team_id
        self._people: dict[str, SlackPerson] = {}
        self._by_email: dict[str, SlackPerson] = {}

    async def refresh(self) -> int:
        people: dict[str, SlackPerson] = {}
        cursor: str | None = None
        waits = 0
        while True:
            try:
                response = await self._client.users_list(limit=1000, cursor=cursor)
            except SlackApiError as exc:
                # users.list is Tier 2 (about 20 a minute): a workspace of 50,000 needs 50 pages,
                # so a big directory is read at Slack's pace rather than given up on.
                if exc.response.status_code == 429 and waits < MAX_LIST_WAITS:
                    waits += 1
                    delay = _retry_after(exc.response.headers)
                    log.info(
                        "Slack's users.list is rate limited after %d people; waiting %.0f s",
                        len(people),
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                log.warning("users.list failed: %s", exc.response.get("error"))
                raise
            for member in response.get("members") or []:
                person = SlackPerson.from_member(member, self.team_id)
                if person is not None:
                    people[person.id] = person
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        self._people = people
        self._by_email = {p.email: p for p in people.values() if p.email}
        log.info("Slack directory: %d people", len(people))
        return len(people)

    def get(self, user_id: str) -> SlackPerson | None:
        return self._people.get(user_id)

    async def lookup(self, user_id: str) -> SlackPerson | None:
        """The person as Slack has them now (users.info), for decisions that grant rights:
        an admin demoted since the last refresh must not still count as one."""
        try:
            response = await self._client.users_info(user=user_id)
        except SlackApiError as exc:
            log.warning("users.info failed: %s", exc.response.get("error"))
            return None
        member = response.get("user")
        return SlackPerson.from_member(member, self.team_id) if isinstance(member, dict) else None

    def admins(self) -> list[str]:
        """Workspace admins and owners as of the last refresh, owners first."""
        ranked = sorted(
            (p for p in self._people.values() if p.is_admin or p.is_owner),
            key=lambda p: (not p.is_owner, p.id),
        )
        return [p.id for p in ranked]

    def status_of(self, user_id: str) -> SlackStatus | None:
        """The status their profile showed at the last refresh."""
        person = self._people.get(user_id)
        return person.status if person is not None else None

    def by_email(self, email: str) -> SlackPerson | None:
        return self._by_email.get(email.strip().casefold())

    def __iter__(self) -> Iterator[SlackPerson]:
        return iter(self._people.values())

    def __len__(self) -> int:
        return len(self._people)
