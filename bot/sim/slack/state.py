"""The Slack simulator's workspace: people and their profiles, tokens, conversations and logs."""

from __future__ import annotations

import random
import re
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.sim.company import Company, Person

TokenKind = Literal["bot", "user", "app"]
SlackRole = Literal["member", "admin", "owner", "primary_owner"]

# Slack only lets a token change the profile of someone strictly below its own role.
ROLE_RANK: dict[SlackRole, int] = {"member": 0, "admin": 1, "owner": 2, "primary_owner": 3}

# The manifest's bot scopes (reference/slack.md §6): what the pre-installed bot token holds.
DEFAULT_BOT_SCOPES = frozenset({"commands", "chat:write", "users:read", "users:read.email"})
# What a user token issued without the browser flow holds (benchmarks with many users): the
# manifest's user scopes.
DEFAULT_USER_SCOPES = ("users.profile:write", "dnd:read", "dnd:write")
DEFAULT_EVENT_SUBSCRIPTIONS = frozenset(
    {
        "app_home_opened",
        "user_status_changed",
        "user_huddle_changed",
        "tokens_revoked",
        "app_uninstalled",
    }
)
STATUS_TEXT_LIMIT = 100
# How many issued codes, URLs and tickets the simulator remembers for log-leak tests.
ISSUED_MEMORY = 10_000
SLACKBOT_ID = "USLACKBOT"

_TIMEZONES = (
    ("America/New_York", "Eastern Daylight Time", -14400),
    ("America/Chicago", "Central Daylight Time", -18000),
    ("America/Los_Angeles", "Pacific Daylight Time", -25200),
    ("Europe/London", "British Summer Time", 3600),
    ("Europe/Berlin", "Central European Summer Time", 7200),
    ("Asia/Tokyo", "Japan Standard Time", 32400),
)
_ALNUM = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_UPPER = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789abcdef"
_EMOJI_PATTERN = re.compile(r"^:[a-z0-9_+\-']+(::skin-tone-[2-6])?:$")


class ApiError(Exception):
    """A Web API failure, answered as `{"ok": false, "error": error, **extra}` with HTTP 200."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


class RateLimited(Exception):
    """A Web API call refused for its rate limit; `wait` is in real seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"rate limited for {wait:.3f}s")
        self.wait = wait


def _pick(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


@dataclass(frozen=True, slots=True)
class AppIdentity:
    """Everything that names the workspace and the app, derived from the company's seed."""

    team_id: str
    team_name: str
    team_domain: str
    app_id: str
    bot_user_id: str
    bot_id: str
    bot_name: str
    bot_token: str
    app_token: str
    signing_secret: str
    client_id: str
    client_secret: str
    verification_token: str
    general_channel_id: str

    @classmethod
    def derive(cls, company: Company) -> AppIdentity:
        rng = random.Random(f"rcstatus-slack-sim/{company.seed}")
        team_number = str(rng.randrange(10**11, 10**12))
        bot_number = str(rng.randrange(10**12, 10**13))
        app_id = "A" + _pick(rng, _UPPER, 10)
        domain = company.domain.split(".")[0]
        return cls(
            team_id=company.team_id,
            team_name=domain.title(),
            team_domain=domain,
            app_id=app_id,
            bot_user_id="UB" + _pick(rng, _UPPER, 8),
            bot_id="B" + _pick(rng, _UPPER, 10),
            bot_name="rcstatus",
            bot_token=f"xoxb-{team_number}-{bot_number}-{_pick(rng, _ALNUM, 24)}",
            app_token=f"xapp-1-{app_id}-{bot_number}-{_pick(rng, _HEX, 64)}",
            signing_secret=_pick(rng, _HEX, 32),
            client_id=f"{team_number}.{rng.randrange(10**12, 10**13)}",
            client_secret=_pick(rng, _HEX, 32),
            verification_token=_pick(rng, _ALNUM, 24),
            general_channel_id="C" + _pick(rng, _UPPER, 10),
        )


@dataclass(slots=True)
class SimUser:
    """One member of the workspace (a person, the app's bot user or Slackbot)."""

    id: str
    name: str
    real_name: str
    first_name: str
    last_name: str
    display_name: str
    email: str | None
    role: SlackRole
    tz: str
    tz_label: str
    tz_offset: int
    is_bot: bool = False
    bot_id: str | None = None
    title: str = ""
    phone: str = ""
    status_text: str = ""
    status_emoji: str = ""
    status_expiration: int = 0
    updated: int = field(default_factory=lambda: int(time.time()))
    snooze_endtime: int = 0
    """When their notification snooze ends (unix seconds); 0 or past: not snoozed."""
    dnd_start: int = 0
    dnd_end: int = 0
    """Their Do Not Disturb schedule's next stretch (unix seconds); 0: no schedule."""
    huddle_state: str = "default_unset"
    huddle_call_id: str = ""
    huddle_expiration: int = 0

    def snoozed(self, now: float) -> bool:
        return self.snooze_endtime > now

    def in_dnd(self, now: float) -> bool:
        """Notifications held: a snooze, or inside the DND schedule."""
        return self.snoozed(now) or (self.dnd_start <= now < self.dnd_end)

    def dnd_json(self, now: float, *, own: bool) -> dict[str, Any]:
        """dnd.info's answer; the snooze_* fields only for the user asking about themselves."""
        found: dict[str, Any] = {
            "dnd_enabled": bool(self.dnd_end),
            "next_dnd_start_ts": self.dnd_start or 1,
            "next_dnd_end_ts": self.dnd_end or 1,
        }
        if own:
            found["snooze_enabled"] = self.snoozed(now)
            if self.snoozed(now):
                found["snooze_endtime"] = self.snooze_endtime
                found["snooze_remaining"] = max(0, int(self.snooze_endtime - now))
                found["snooze_is_indefinite"] = False
        return found

    def expire_status(self, now: float) -> None:
        """Slack shows an expired status as no status at all."""
        if self.status_expiration and now >= self.status_expiration:
            self.status_text, self.status_emoji, self.status_expiration = "", "", 0

    def status(self, now: float) -> tuple[str, str, int]:
        self.expire_status(now)
        return self.status_text, self.status_emoji, self.status_expiration


@dataclass(slots=True)
class Token:
    """An issued token: who it acts as and what it may do."""

    value: str
    kind: TokenKind
    user_id: str | None
    scopes: set[str]
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """Something the app said: a DM, a channel post, a response_url post or an ack."""

    kind: Literal["dm", "channel", "response_url", "ack"]
    channel: str | None
    user: str | None
    text: str
    blocks: list[dict[str, Any]]
    ts: str
    extra: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "channel": self.channel,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "ts": self.ts,
            **self.extra,
        }


@dataclass(slots=True)
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    since: float = field(default_factory=time.time)


def valid_emoji(emoji: str) -> bool:
    return bool(_EMOJI_PATTERN.match(emoji))


def _person_to_user(person: Person, index: int) -> SimUser:
    assert person.slack_id is not None
    tz, tz_label, tz_offset = _TIMEZONES[index % len(_TIMEZONES)]
    role: SlackRole = "primary_owner" if person.slack_role == "owner" else person.slack_role
    # Many real people leave display_name empty and are shown by real_name.
    display_name = "" if index % 5 == 4 else person.first_name
    return SimUser(
        id=person.slack_id,
        name=person.handle,
        real_name=person.name,
        first_name=person.first_name,
        last_name=person.last_name,
        display_name=display_name,
        email=person.email,
        role=role,
        tz=tz,
        tz_label=tz_label,
        tz_offset=tz_offset,
        phone=person.extension_number or "",
    )


class Workspace:
    """All mutable state of the simulated workspace; every lookup is a dict access."""

    def __init__(
        self,
        company: Company,
        identity: AppIdentity,
        *,
        log_limit: int = 100_000,
        bot_scopes: Iterable[str] = DEFAULT_BOT_SCOPES,
    ):
        self.identity = identity
        self.users: dict[str, SimUser] = {}
        self._by_email: dict[str, SimUser] = {}
        self._by_handle: dict[str, SimUser] = {}
        for index, person in enumerate(company.slack_users):
            user = _person_to_user(person, index)
            self.users[user.id] = user
            self._by_handle[user.name] = user
            if user.email is not None:
                self._by_email[user.email.lower()] = user
        self.humans: tuple[str, ...] = tuple(self.users)
        # Slackbot is listed by users.list with is_bot false and no email: a classic trap.
        self.users[SLACKBOT_ID] = SimUser(
            id=SLACKBOT_ID,
            name="slackbot",
            real_name="Slackbot",
            first_name="slackbot",
            last_name="",
            display_name="Slackbot",
            email=None,
            role="member",
            tz="America/Los_Angeles",
            tz_label="Pacific Daylight Time",
            tz_offset=-25200,
        )
        self.users[identity.bot_user_id] = SimUser(
            id=identity.bot_user_id,
            name=identity.bot_name,
            real_name=identity.bot_name,
            first_name=identity.bot_name,
            last_name="",
            display_name="",
            email=None,
            role="member",
            tz="America/Los_Angeles",
            tz_label="Pacific Daylight Time",
            tz_offset=-25200,
            is_bot=True,
            bot_id=identity.bot_id,
        )
        self.member_order: tuple[str, ...] = tuple(self.users)

        self.tokens: dict[str, Token] = {}
        self._live_user_tokens: dict[str, str] = {}
        self._token_rng = random.Random(f"rcstatus-slack-sim/{company.seed}/user-tokens")
        self.tokens[identity.bot_token] = Token(
            identity.bot_token, "bot", identity.bot_user_id, set(bot_scopes)
        )
        self.tokens[identity.app_token] = Token(
            identity.app_token, "app", None, {"connections:write"}
        )

        self._dm_by_user = {user_id: "D" + user_id[1:].rjust(10, "0") for user_id in self.users}
        self._dm_owner = {channel: user_id for user_id, channel in self._dm_by_user.items()}
        self._opened_dms: set[str] = set()
        self.views: dict[str, dict[str, Any]] = {}
        self._view_counter = 0
        self.messages: deque[Message] = deque(maxlen=log_limit)
        self._recent_by_user: dict[str, deque[Message]] = {}
        self.profile_writes: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self.snooze_calls: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self.stats = Stats()
        self._last_ts = 0.0

    # -- people -----------------------------------------------------------------------------

    def user(self, user_id: str) -> SimUser | None:
        return self.users.get(user_id)

    def human(self, user_id: str) -> SimUser:
        user = self.users.get(user_id)
        if user is None or user.is_bot or user.id == SLACKBOT_ID:
            raise KeyError(user_id)
        return user

    def by_email(self, email: str) -> SimUser | None:
        return self._by_email.get(email.strip().lower())

    def by_handle(self, handle: str) -> SimUser | None:
        return self._by_handle.get(handle)

    def iter_humans(self) -> Iterator[SimUser]:
        return (self.users[user_id] for user_id in self.humans)

    # -- tokens -----------------------------------------------------------------------------

    def grant_user_token(self, user_id: str, scopes: Iterable[str]) -> Token:
        """The user's live xoxp token (issued if needed) with `scopes` added to earlier grants."""
        current = self._live_user_tokens.get(user_id)
        if current is not None:
            token = self.tokens[current]
            token.scopes.update(scopes)
            return token
        team_number = self.identity.bot_token.split("-")[1]
        value = "-".join(
            (
                "xoxp",
                team_number,
                str(self._token_rng.randrange(10**12, 10**13)),
                str(self._token_rng.randrange(10**12, 10**13)),
                _pick(self._token_rng, _HEX, 32),
            )
        )
        token = Token(value, "user", user_id, set(scopes))
        self.tokens[value] = token
        self._live_user_tokens[user_id] = value
        return token

    def grant_bot_scopes(self, scopes: Iterable[str]) -> Token:
        token = self.tokens[self.identity.bot_token]
        token.scopes.update(scopes)
        return token

    def live_user_token(self, user_id: str) -> Token | None:
        value = self._live_user_tokens.get(user_id)
        return None if value is None else self.tokens[value]

    def revoke_user_tokens(self, user_id: str) -> list[str]:
        value = self._live_user_tokens.pop(user_id, None)
        if value is None:
            return []
        self.tokens[value].revoked = True
        return [value]

    # -- conversations ----------------------------------------------------------------------

    def dm_channel(self, user_id: str) -> str:
        """The app's DM with a user; stable, like Slack's, so repeated opens return the same id."""
        return self._dm_by_user[user_id]

    def open_dm(self, user_id: str) -> tuple[str, bool]:
        """Open (or reopen) the app's DM with a user: (channel id, whether it was already open)."""
        already_open = user_id in self._opened_dms
        self._opened_dms.add(user_id)
        return self._dm_by_user[user_id], already_open

    def dm_user(self, channel: str) -> str | None:
        return self._dm_owner.get(channel)

    def next_ts(self) -> str:
        """A unique Slack message timestamp ("seconds.micros"), increasing like Slack's."""
        now = max(time.time(), self._last_ts + 0.000001)
        self._last_ts = now
        return f"{now:.6f}"

    def record_message(self, message: Message) -> None:
        self.messages.append(message)
        if message.user is not None:
            recent = self._recent_by_user.get(message.user)
            if recent is None:
                recent = self._recent_by_user[message.user] = deque(maxlen=50)
            recent.append(message)

    def recent_messages(self, user_id: str) -> Iterable[Message]:
        return reversed(self._recent_by_user.get(user_id, ()))

    def publish_view(self, user_id: str, view: dict[str, Any]) -> dict[str, Any]:
        self._view_counter += 1
        published = {
            "id": f"V{self._view_counter:010d}",
            "team_id": self.identity.team_id,
            "type": view.get("type", "home"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{self._view_counter:08d}",
            "title": view.get("title"),
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": None,
            "previous_view_id": None,
            "root_view_id": f"V{self._view_counter:010d}",
            "app_id": self.identity.app_id,
            "external_id": view.get("external_id", ""),
            "app_installed_team_id": self.identity.team_id,
            "bot_id": self.identity.bot_id,
        }
        self.views[user_id] = published
        return published

    # -- serialisation ----------------------------------------------------------------------

    def profile_json(self, user: SimUser, *, with_email: bool, now: float) -> dict[str, Any]:
        text, emoji, expiration = user.status(now)
        profile: dict[str, Any] = {
            "title": user.title,
            "phone": user.phone,
            "skype": "",
            "real_name": user.real_name,
            "real_name_normalized": user.real_name,
            "display_name": user.display_name,
            "display_name_normalized": user.display_name,
            "fields": None,
            "status_text": text,
            "status_emoji": emoji,
            "status_emoji_display_info": [],
            "status_expiration": expiration,
            "avatar_hash": "g" + user.id[-11:].lower(),
            "huddle_state": user.huddle_state,
            "huddle_state_expiration_ts": user.huddle_expiration,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "image_24": f"https://secure.gravatar.com/avatar/{user.id}.jpg?s=24",
            "image_48": f"https://secure.gravatar.com/avatar/{user.id}.jpg?s=48",
            "image_72": f"https://secure.gravatar.com/avatar/{user.id}.jpg?s=72",
            "team": self.identity.team_id,
        }
        if user.huddle_call_id:
            profile["huddle_state_call_id"] = user.huddle_call_id
        if user.is_bot:
            profile["bot_id"] = user.bot_id
            profile["api_app_id"] = self.identity.app_id
            profile["always_active"] = True
        if with_email and user.email is not None:
            profile["email"] = user.email
        return profile

    def user_json(self, user: SimUser, *, with_email: bool, now: float) -> dict[str, Any]:
        rank = ROLE_RANK[user.role]
        return {
            "id": user.id,
            "team_id": self.identity.team_id,
            "name": user.name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": user.real_name,
            "tz": user.tz,
            "tz_label": user.tz_label,
            "tz_offset": user.tz_offset,
            "profile": self.profile_json(user, with_email=with_email, now=now),
            "is_admin": rank >= ROLE_RANK["admin"],
            "is_owner": rank >= ROLE_RANK["owner"],
            "is_primary_owner": user.role == "primary_owner",
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": user.is_bot,
            "is_app_user": False,
            "updated": user.updated,
            "is_email_confirmed": user.email is not None,
            "who_can_share_contact_card": "EVERYONE",
        }
