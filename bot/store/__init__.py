"""The bot's durable state: links, preferences, saved statuses, watches, presence, installations."""

from bot.policy import SlackStatus
from bot.store.migrations import LATEST_VERSION
from bot.store.records import (
    AutoLinkConflict,
    AutoLinkReport,
    ClaimRecord,
    ClaimState,
    Link,
    LinkConflict,
    LinkSource,
    PreferenceChanges,
    Preferences,
    StoreError,
    Watch,
    WatchState,
    WorkspaceDefaultChanges,
    WorkspaceDefaults,
)
from bot.store.store import Store

__all__ = [
    "LATEST_VERSION",
    "AutoLinkConflict",
    "AutoLinkReport",
    "ClaimRecord",
    "ClaimState",
    "Link",
    "LinkConflict",
    "LinkSource",
    "PreferenceChanges",
    "Preferences",
    "SlackStatus",
    "Store",
    "StoreError",
    "Watch",
    "WatchState",
    "WorkspaceDefaultChanges",
    "WorkspaceDefaults",
]
