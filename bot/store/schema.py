"""The tables as the latest migration leaves them; queries are written against these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

SLACK_ID: Final = 32
"""Slack team and user ids, RingCentral extension ids: short opaque strings."""
STATUS_TEXT: Final = 200
"""Slack allows 100 characters of status text; room for multi-byte counting differences."""
EMOJI: Final = 128
"""Custom emoji names run to 100 characters, plus colons and a skin-tone suffix."""

# The names Bolt's SQLAlchemy stores use by default; kept so existing deployments' rows are found.
SLACK_INSTALLATIONS: Final = "slack_installations"
SLACK_BOTS: Final = "slack_bots"
SLACK_OAUTH_STATES: Final = "slack_oauth_states"
SCHEMA_VERSION: Final = "rcstatus_schema_version"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out on every dialect.

    PostgreSQL keeps the zone (timestamptz); SQLite keeps none, so UTC is stored naive and the zone
    is put back on the way out. Naive input is refused: its meaning would depend on the host.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"the store takes timezone-aware datetimes only, got {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    SCHEMA_VERSION,
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

links = Table(
    "rcstatus_links",
    metadata,
    Column("team_id", String(SLACK_ID), primary_key=True),
    Column("user_id", String(SLACK_ID), primary_key=True),
    Column("extension_id", String(SLACK_ID), nullable=False),
    Column("source", String(16), nullable=False),
    Column("linked_at", UTCDateTime, nullable=False),
    Index("rcstatus_links_extension", "team_id", "extension_id", unique=True),
)

link_requests = Table(
    "rcstatus_link_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("requester_id", String(SLACK_ID), nullable=False),
    Column("extension_id", String(SLACK_ID), nullable=False),
    Column("holder_id", String(SLACK_ID)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("decided_by", String(SLACK_ID)),
    Column("decided_at", UTCDateTime),
    # One open request per person: asking again replaces it.
    Index(
        "rcstatus_link_requests_one_pending",
        "team_id",
        "requester_id",
        unique=True,
        postgresql_where=text("state = 'pending'"),
        sqlite_where=text("state = 'pending'"),
    ),
    Index("rcstatus_link_requests_state", "team_id", "state", "created_at"),
)

link_events = Table(
    "rcstatus_link_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("action", String(16), nullable=False),
    Column("actor_id", String(SLACK_ID), nullable=False),
    Column("subject_id", String(SLACK_ID), nullable=False),
    Column("extension_id", String(SLACK_ID), nullable=False),
    Column("displaced_id", String(SLACK_ID)),
    Column("request_id", Integer),
    Index("rcstatus_link_events_at", "team_id", "at"),
)

link_notices = Table(
    "rcstatus_link_notices",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("user_id", String(SLACK_ID), nullable=False),
    Column("event_id", Integer, nullable=False),
    Index("rcstatus_link_notices_user", "team_id", "user_id"),
)

api_keys = Table(
    "rcstatus_api_keys",
    metadata,
    Column("id", String(SLACK_ID), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("scopes", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("revoked_at", UTCDateTime),
)

api_events = Table(
    "rcstatus_api_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("user_id", String(SLACK_ID), nullable=False),
    Column("data", Text, nullable=False),
    Index("rcstatus_api_events_team", "team_id", "id"),
    Index("rcstatus_api_events_at", "at"),
)

rc_sessions = Table(
    "rcstatus_rc_sessions",
    metadata,
    # A digest of the RingCentral app and credential the session belongs to, never either.
    Column("id", String(64), primary_key=True),
    # Encrypted by bot/ringcentral/vault.py: the store never sees a token in the clear.
    Column("data", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

leader_lease = Table(
    "rcstatus_leader_lease",
    metadata,
    Column("name", String(32), primary_key=True),
    # Which replica holds it (REPLICA_ID or host-pid), for /readyz and logs.
    Column("holder", String(128)),
    # Bumped by every takeover; the leader's writes carry it and a stale one is refused.
    Column("epoch", BigInteger, nullable=False),
    Column("acquired_at", UTCDateTime),
    # On the database's clock, the one clock every replica shares.
    Column("expires_at", UTCDateTime, nullable=False),
)

extensions = Table(
    "rcstatus_extensions",
    metadata,
    # RingCentral's enabled User extensions as the leader last listed them, so replicas that
    # never talk to RingCentral can resolve a number or an email. Extension numbers are short
    # internal numbers, not phone numbers; phone numbers are never kept.
    Column("id", String(SLACK_ID), primary_key=True),
    Column("number", String(SLACK_ID), nullable=False),
    Column("name", String(STATUS_TEXT), nullable=False),
    Column("email", String(STATUS_TEXT)),
)

webhooks = Table(
    "rcstatus_webhooks",
    metadata,
    Column("id", String(SLACK_ID), primary_key=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("url", String(2048), nullable=False),
    # Kept as given: signing needs the secret itself (see bot/webhooks/api.py for who sees it).
    Column("secret", String(128), nullable=False),
    Column("people", Text),
    Column("availability", String(200)),
    Column("description", String(500), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("disabled_reason", String(200)),
    Column("created_by", String(SLACK_ID), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # The last event id already turned into this endpoint's deliveries.
    Column("event_cursor", Integer, nullable=False),
    Column("last_success_at", UTCDateTime),
    Index("rcstatus_webhooks_team", "team_id", "created_at"),
)

webhook_deliveries = Table(
    "rcstatus_webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(SLACK_ID), nullable=False),
    Column("event_id", Integer, nullable=False),
    Column("user_id", String(SLACK_ID), nullable=False),
    Column("event_at", UTCDateTime, nullable=False),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("first_attempt_at", UTCDateTime),
    Column("last_attempt_at", UTCDateTime),
    Column("last_status", Integer),
    Column("last_error", String(200)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Index("rcstatus_webhook_deliveries_event", "endpoint_id", "event_id", unique=True),
    # Order per person: only the oldest unfinished delivery of a person is ever 'pending'.
    Index(
        "rcstatus_webhook_deliveries_one_pending",
        "endpoint_id",
        "user_id",
        unique=True,
        postgresql_where=text("state = 'pending'"),
        sqlite_where=text("state = 'pending'"),
    ),
    Index("rcstatus_webhook_deliveries_due", "endpoint_id", "state", "next_attempt_at"),
    Index("rcstatus_webhook_deliveries_person", "endpoint_id", "user_id", "state", "id"),
    Index("rcstatus_webhook_deliveries_finished", "state", "finished_at"),
)


def _control_columns() -> list[Column[Any]]:
    """The per-call-type wording and the switches a person sets and a workspace defaults
    (None: the next one's choice); new Column objects for each table, which cannot share them."""
    return [
        Column("sync_meetings", Boolean),
        Column("snooze", Boolean),
        Column("huddle_busy", Boolean),
        Column("call_types", Boolean),
        Column("external_call_text", String(STATUS_TEXT)),
        Column("internal_call_text", String(STATUS_TEXT)),
        Column("inbound_call_text", String(STATUS_TEXT)),
        Column("outbound_call_text", String(STATUS_TEXT)),
    ]


preferences = Table(
    "rcstatus_preferences",
    metadata,
    Column("team_id", String(SLACK_ID), primary_key=True),
    Column("user_id", String(SLACK_ID), primary_key=True),
    Column("sync_enabled", Boolean, nullable=False, server_default=text("true")),
    Column("paused", Boolean, nullable=False, server_default=text("false")),
    Column("policy", String(16), nullable=False, server_default="respect"),
    Column("call_text", String(STATUS_TEXT)),
    Column("call_emoji", String(EMOJI)),
    Column("meeting_text", String(STATUS_TEXT)),
    Column("meeting_emoji", String(EMOJI)),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("disconnected_notified_at", UTCDateTime),
    Column("share", Boolean, nullable=False, server_default=text("true")),
    *_control_columns(),
)

stars = Table(
    "rcstatus_stars",
    metadata,
    Column("team_id", String(SLACK_ID), primary_key=True),
    Column("user_id", String(SLACK_ID), primary_key=True),
    Column("starred_id", String(SLACK_ID), primary_key=True),
    Column("position", Integer, nullable=False),
)

workspace_defaults = Table(
    "rcstatus_workspace_defaults",
    metadata,
    Column("team_id", String(SLACK_ID), primary_key=True),
    Column("call_text", String(STATUS_TEXT)),
    Column("call_emoji", String(EMOJI)),
    Column("meeting_text", String(STATUS_TEXT)),
    Column("meeting_emoji", String(EMOJI)),
    Column("updated_at", UTCDateTime, nullable=False),
    *_control_columns(),
)

claims = Table(
    "rcstatus_claims",
    metadata,
    Column("team_id", String(SLACK_ID), primary_key=True),
    Column("user_id", String(SLACK_ID), primary_key=True),
    Column("saved_text", String(STATUS_TEXT), nullable=False),
    Column("saved_emoji", String(EMOJI), nullable=False),
    Column("saved_expiration", Integer, nullable=False),
    Column("written_text", String(STATUS_TEXT), nullable=False),
    Column("written_emoji", String(EMOJI), nullable=False),
    Column("written_expiration", Integer, nullable=False),
    Column("written_at", UTCDateTime, nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Index("rcstatus_claims_state", "state"),
)

presence = Table(
    "rcstatus_presence",
    metadata,
    Column("extension_id", String(SLACK_ID), primary_key=True),
    Column("availability_since", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("presence_status", String(32)),
    Column("user_status", String(32)),
    Column("telephony_status", String(32)),
    Column("aggregated_telephony_status", String(32)),
    Column("dnd_status", String(64)),
    Column("dnd_status_personal", String(64)),
    Column("meeting_status", String(32)),
    Column("allow_see_my_presence", Boolean),
    Column("active_calls", Integer),
    Column("call_direction", String(16)),
    Column("on_call_since", UTCDateTime),
    Column("call_party", String(16)),
)

watches = Table(
    "rcstatus_watches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("watcher_id", String(SLACK_ID), nullable=False),
    Column("target_id", String(SLACK_ID), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("busy_since", UTCDateTime),
    Column("fired_at", UTCDateTime),
    Column("expiry_reported_at", UTCDateTime),
    # At most one active watch per (watcher, target): re-adding one extends it instead.
    Index(
        "rcstatus_watches_one_active",
        "team_id",
        "watcher_id",
        "target_id",
        unique=True,
        postgresql_where=text("state = 'active'"),
        sqlite_where=text("state = 'active'"),
    ),
    Index("rcstatus_watches_watcher", "team_id", "watcher_id", "state"),
    Index("rcstatus_watches_target", "team_id", "target_id", "state"),
    Index("rcstatus_watches_expiry", "state", "expires_at"),
)

dm_outbox = Table(
    "rcstatus_dm_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("team_id", String(SLACK_ID), nullable=False),
    Column("user_id", String(SLACK_ID), nullable=False),
    Column("text", Text, nullable=False),
    Column("blocks", Text),
    # The watch this DM fires: marked fired in the same transaction that deletes the row.
    Column("watch_id", Integer, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    # When the next attempt is due; a sender claims a row by moving this past its lease.
    Column("due_at", UTCDateTime, nullable=False),
    Column("give_up_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("last_error", String(64)),
    Index("rcstatus_dm_outbox_due", "team_id", "due_at"),
)
