"""A synthetic company, deterministic from a seed, that both simulators populate themselves from."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Alice Bob Carol Dave Erin Frank Grace Heidi Ivan Judy Mallory Niaj Olivia Peggy Rupert "
    "Sybil Trent Victor Walter Yasmin Zoe Aaron Bianca Caleb Delia Emil Fatima Gustavo Hana "
    "Igor Jasmine Kenji Leila Marco Nadia Oscar Priya Quentin Rosa Samir Tomas Uma Vera Wen "
    "Xavier Yusuf Zara Amara Bruno Chloe Dmitri Elena Felix Gita Hugo Ines Jonas Kira Luca "
    "Maya Noah Omar Paula Rafael Sofia Theo Ulla Viktor Willa"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Kowalski Novak "
    "Tanaka Sato Okafor Haddad Larsen Virtanen Rossi Schmidt Dubois Silva"
)

Role = Literal["member", "admin", "owner"]


@dataclass(frozen=True, slots=True)
class Person:
    """Someone who may have a RingCentral extension, a Slack account, or both."""

    first_name: str
    last_name: str
    email: str
    extension_id: int | None
    extension_number: str | None
    extension_status: Literal["Enabled", "Disabled"] | None
    slack_id: str | None
    slack_role: Role
    rc_email_capitalised: bool = False

    @property
    def rc_email(self) -> str:
        """The email as RingCentral stores it: admins type capitals, matching must not care."""
        if not self.rc_email_capitalised:
            return self.email
        local, _, domain = self.email.partition("@")
        return f"{local.title()}@{domain}"

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def handle(self) -> str:
        return f"{self.first_name}.{self.last_name}".lower()


@dataclass(frozen=True, slots=True)
class SystemExtension:
    """A RingCentral extension that is not a person (call queue, IVR menu...)."""

    extension_id: int
    extension_number: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class Company:
    seed: int
    account_id: int
    domain: str
    team_id: str
    people: tuple[Person, ...]
    system_extensions: tuple[SystemExtension, ...] = field(default=())

    @property
    def rc_users(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.extension_id is not None)

    @property
    def slack_users(self) -> tuple[Person, ...]:
        return tuple(p for p in self.people if p.slack_id is not None)


def build_company(
    users: int,
    seed: int = 1,
    *,
    slack_only: int | None = None,
    ringcentral_only: int | None = None,
    disabled: int | None = None,
    system_extensions: int = 4,
) -> Company:
    """Build `users` people who are on both RingCentral and Slack, plus a few on one side only.

    The first two shared people are the Slack owner and admin; everyone else is a member.
    """
    rng = random.Random(seed)
    slack_only = max(1, users // 20) if slack_only is None else slack_only
    ringcentral_only = max(1, users // 20) if ringcentral_only is None else ringcentral_only
    disabled = max(1, users // 50) if disabled is None else disabled
    account_id = 400_000_000 + rng.randrange(1_000_000) * 1000 + 4
    domain = "example.com"
    team_id = "T" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(8))

    taken_emails: set[str] = set()
    people: list[Person] = []
    next_extension_number = 101
    next_slack = 1

    def new_name() -> tuple[str, str, str]:
        while True:
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            local = f"{first}.{last}".lower()
            email = f"{local}@{domain}"
            suffix = 2
            while email in taken_emails:
                email = f"{local}{suffix}@{domain}"
                suffix += 1
            taken_emails.add(email)
            return first, last, email

    def slack_id() -> str:
        nonlocal next_slack
        value = f"U{next_slack:08d}"
        next_slack += 1
        return value

    def extension() -> tuple[int, str]:
        nonlocal next_extension_number
        number = str(next_extension_number)
        next_extension_number += 1
        return account_id + 1000 * int(number), number

    kinds: list[str] = (
        ["both"] * users
        + ["slack"] * slack_only
        + ["rc"] * ringcentral_only
        + ["disabled"] * disabled
    )
    for index, kind in enumerate(kinds):
        first, last, email = new_name()
        ext_id: int | None = None
        ext_number: str | None = None
        status: Literal["Enabled", "Disabled"] | None = None
        if kind in ("both", "rc", "disabled"):
            ext_id, ext_number = extension()
            status = "Disabled" if kind == "disabled" else "Enabled"
        role: Role = "member"
        if kind == "both" and index == 0:
            role = "owner"
        elif kind == "both" and index == 1:
            role = "admin"
        people.append(
            Person(
                first_name=first,
                last_name=last,
                email=email,
                extension_id=ext_id,
                extension_number=ext_number,
                extension_status=status,
                slack_id=slack_id() if kind in ("both", "slack") else None,
                slack_role=role,
                rc_email_capitalised=kind == "both" and index % 7 == 3,
            )
        )

    system_kinds = ("Department", "IvrMenu", "Announcement", "Voicemail", "ParkLocation")
    systems = []
    for index in range(system_extensions):
        system_kind = system_kinds[index % len(system_kinds)]
        number = str(900 + index)
        systems.append(
            SystemExtension(
                extension_id=account_id + 1000 * int(number) + 7,
                extension_number=number,
                name=f"{system_kind} {number}",
                type=system_kind,
            )
        )
    return Company(
        seed=seed,
        account_id=account_id,
        domain=domain,
        team_id=team_id,
        people=tuple(people),
        system_extensions=tuple(systems),
    )
