"""The store's vocabulary: the plain values that go in and come out, and the errors it raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal, TypedDict, get_args

from bot.errors import BotError
from bot.policy import SlackStatus, StatusPolicy

LinkSource = Literal["auto", "manual"]
ClaimState = Literal["claimed", "released"]
WatchState = Literal["active", "sending", "fired", "expired", "cancelled"]
LinkAction = Literal["linked", "unlinked", "requested", "approved", "denied"]
LinkRequestState = Literal["pending", "approved", "denied", "expired", "stale", "withdrawn"]

LINK_SOURCES: Final[tuple[LinkSource, ...]] = get_args(LinkSource)
STATUS_POLICIES: Final[tuple[StatusPolicy, ...]] = tuple(StatusPolicy)


class StoreError(BotError):
    """The database cannot be reached or used; the message names the host, never a password."""


class LinkConflict(BotError):
    """The extension already belongs to someone else in this workspace."""

    def __init__(self, extension_id: str, holder: Link) -> None:
        self.extension_id = extension_id
        self.holder = holder
        super().__init__(
            f"extension {extension_id} is already linked to <@{holder.user_id}> "
            f"({holder.source} link)"
        )


@dataclass(frozen=True, slots=True)
class Link:
    """One Slack user's RingCentral extension in one workspace."""

    team_id: str
    user_id: str
    extension_id: str
    source: LinkSource
    linked_at: datetime


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One entry of the audit trail: who changed which link, when, and who approved it."""

    id: int
    team_id: str
    at: datetime
    action: LinkAction
    actor_id: str
    """Who did it: the person themselves, an admin, or the admin who approved a request."""
    subject_id: str
    """Whose link it is (the requester, for requests)."""
    extension_id: str
    displaced_id: str | None = None
    """Whose link to the extension was removed to make room, if anyone's."""
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class LinkChange:
    """What `Store.assign_link` did; `event` is None when nothing changed."""

    link: Link
    previous: Link | None
    """The subject's own link before, if they had one."""
    displaced: Link | None
    """Another person's link the change removed (only ever on an admin's explicit say-so)."""
    event: LinkEvent | None


@dataclass(frozen=True, slots=True)
class LinkRequest:
    """A person's request for an extension they may not take alone; an admin decides."""

    id: int
    team_id: str
    requester_id: str
    extension_id: str
    holder_id: str | None
    """Who held the extension when the request was made: approving moves it from them only."""
    created_at: datetime
    expires_at: datetime
    state: LinkRequestState
    decided_by: str | None = None
    decided_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LinkDecision:
    """The outcome of an admin's click on a request: the request as it now stands, and the link
    change when approval made one. `change` is None when the request was already decided,
    expired, denied, or the extension changed hands since it was made (state "stale")."""

    request: LinkRequest
    change: LinkChange | None
    decided_now: bool
    """False when someone else had already decided (or it had expired): nothing was done."""
    event: LinkEvent | None = None
    """The audit entry of this decision (approval or denial), when one was made now."""


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: never the key itself, only its hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TooManyLinkRequests(BotError):
    """The workspace already has as many pending link requests as it may hold."""


@dataclass(frozen=True, slots=True)
class AutoLinkConflict:
    """An extension that automatic linking could not give to anyone."""

    extension_id: str
    wanted_by: tuple[str, ...]
    """The Slack users the matching proposed for this extension."""
    held_by: str | None = None
    """The Slack user whose manual link holds the extension, if that is the reason."""


@dataclass(frozen=True, slots=True)
class AutoLinkReport:
    """What `Store.replace_auto_links` changed; a changed extension shows in both lists."""

    added: tuple[Link, ...] = ()
    removed: tuple[Link, ...] = ()
    conflicts: tuple[AutoLinkConflict, ...] = ()
    unchanged: int = 0

    def __bool__(self) -> bool:
        """True when any link changed."""
        return bool(self.added or self.removed)


@dataclass(frozen=True, slots=True)
class Preferences:
    """One person's choices; None texts and emoji mean "use the workspace default"."""

    team_id: str
    user_id: str
    sync_enabled: bool = True
    paused: bool = False
    policy: StatusPolicy = StatusPolicy.RESPECT
    call_text: str | None = None
    call_emoji: str | None = None
    meeting_text: str | None = None
    meeting_emoji: str | None = None
    starred: tuple[str, ...] = ()
    """Slack users this person follows, in the order they were starred."""
    disconnected_notified_at: datetime | None = None
    """When we told them their Slack token stopped working, so the DM goes out once."""
    share: bool = True
    """Whether other systems (the API, its stream, webhooks) may see their availability."""
    sync_meetings: bool | None = None
    """Whether meetings show as a status; None means the workspace's choice."""
    snooze: bool | None = None
    """Snooze Slack notifications during calls; None means the workspace's choice."""
    huddle_busy: bool | None = None
    """Show RingCentral Busy during Slack huddles; None means the workspace's choice."""
    call_types: bool | None = None
    """Word the call status by call type; None means the workspace's choice."""
    external_call_text: str | None = None
    internal_call_text: str | None = None
    inbound_call_text: str | None = None
    outbound_call_text: str | None = None


class PreferenceChanges(TypedDict, total=False):
    """The fields `Store.update_preferences` may change; absent keys stay as they are."""

    sync_enabled: bool
    paused: bool
    policy: StatusPolicy
    call_text: str | None
    call_emoji: str | None
    meeting_text: str | None
    meeting_emoji: str | None
    starred: Sequence[str]
    disconnected_notified_at: datetime | None
    share: bool
    sync_meetings: bool | None
    snooze: bool | None
    huddle_busy: bool | None
    call_types: bool | None
    external_call_text: str | None
    internal_call_text: str | None
    inbound_call_text: str | None
    outbound_call_text: str | None


@dataclass(frozen=True, slots=True)
class WorkspaceDefaults:
    """A workspace's own wording for the statuses; None means the bot's built-in text."""

    team_id: str
    call_text: str | None = None
    call_emoji: str | None = None
    meeting_text: str | None = None
    meeting_emoji: str | None = None
    sync_meetings: bool | None = None
    """Whether meetings show as a status; None means the workspace's choice."""
    snooze: bool | None = None
    """Snooze Slack notifications during calls; None means the workspace's choice."""
    huddle_busy: bool | None = None
    """Show RingCentral Busy during Slack huddles; None means the workspace's choice."""
    call_types: bool | None = None
    """Word the call status by call type; None means the workspace's choice."""
    external_call_text: str | None = None
    internal_call_text: str | None = None
    inbound_call_text: str | None = None
    outbound_call_text: str | None = None


class WorkspaceDefaultChanges(TypedDict, total=False):
    """The fields `Store.update_workspace_defaults` may change."""

    call_text: str | None
    call_emoji: str | None
    meeting_text: str | None
    meeting_emoji: str | None
    sync_meetings: bool | None
    snooze: bool | None
    huddle_busy: bool | None
    call_types: bool | None
    external_call_text: str | None
    internal_call_text: str | None
    inbound_call_text: str | None
    outbound_call_text: str | None


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    """The status writer's hold on someone's status: what was there before, and what we wrote."""

    team_id: str
    user_id: str
    saved: SlackStatus
    written: SlackStatus
    written_at: datetime
    claimed_at: datetime
    state: ClaimState

    @property
    def active(self) -> bool:
        return self.state == "claimed"


@dataclass(frozen=True, slots=True)
class Watch:
    """A "tell me when this person is free" request: one watcher, one target, fired at most once."""

    id: int
    team_id: str
    watcher_id: str
    target_id: str
    created_at: datetime
    expires_at: datetime
    state: WatchState
    busy_since: datetime | None = None
    """When the target became busy, so the DM can say how long they were."""
    fired_at: datetime | None = None
    expiry_reported_at: datetime | None = None
