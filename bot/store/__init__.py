"""The bot's durable state: links, preferences, saved statuses, watches, presence, installations."""

from bot.policy import SlackStatus
from bot.store.migrations import LATEST_VERSION
from bot.store.records import (
    AutoLinkConflict,
    Claim,
    ClaimState,
    Link,
    LinkConflict,
    LinkSource,
    PreferenceChanges,
    Preferences,
    StatusPolicy,
    StoreError,
    SyncReport,
    Watch,
    WatchState,
    WorkspaceDefaultChanges,
    WorkspaceDefaults,
)
from bot.store.store import Store

__all__ = [
    "LATEST_VERSION",
    "AutoLinkConflict",
    "Claim",
    "ClaimState",
    "Link",
    "LinkConflict",
    "LinkSource",
    "PreferenceChanges",
    "Preferences",
    "SlackStatus",
    "StatusPolicy",
    "Store",
    "StoreError",
    "SyncReport",
    "Watch",
    "WatchState",
    "WorkspaceDefaultChanges",
    "WorkspaceDefaults",
]
