"""The store the bot uses: one object with every repository, on SQLite or PostgreSQL."""

from __future__ import annotations

from bot.store.api_keys import ApiKeyRepository
from bot.store.claims import ClaimRepository
from bot.store.events import EventRepository
from bot.store.extensions import ExtensionRepository
from bot.store.links import LinkRepository
from bot.store.outbox import OutboxRepository
from bot.store.preferences import PreferenceRepository
from bot.store.presence import PresenceRepository
from bot.store.rc_sessions import RcSessionRepository
from bot.store.watches import WatchRepository
from bot.store.webhooks import WebhookRepository


class Store(
    LinkRepository,
    PreferenceRepository,
    ClaimRepository,
    WatchRepository,
    OutboxRepository,
    PresenceRepository,
    ApiKeyRepository,
    EventRepository,
    WebhookRepository,
    RcSessionRepository,
    ExtensionRepository,
):
    """Links, preferences, saved statuses, watches, DMs to send, last known presence and Slack
    installations.

    SQLite by default, PostgreSQL when the URL names it. `open()` connects and migrates the
    schema; every method takes its own short transaction, so one store may be shared by any
    number of tasks. Datetimes go in and come out timezone-aware in UTC. It implements
    `bot.coordinator.PresenceMemory`.
    """
