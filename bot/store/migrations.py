"""Versioned schema migrations: an ordered list of steps, each applied once and recorded.

Each step spells out its tables as they were when it was written instead of reusing `schema`'s
declarations: a later change to those must not rewrite what an old step did. Every step of one
upgrade runs in one transaction (both databases have transactional DDL), so a failed upgrade
leaves the previous version intact. On PostgreSQL the transaction first takes an advisory lock,
so replicas that start together migrate one after the other; SQLite's write lock does the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.store import schema
from bot.store.records import StoreError
from bot.store.schema import UTCDateTime  # how datetimes bind, which every step shares

# Column sizes as the steps below wrote them; changing schema.py must not change history.
SLACK_ID: Final = 32
STATUS_TEXT: Final = 200
EMOJI: Final = 128

MIGRATION_LOCK_KEY: Final = 0x7263_7374_6D69_6772
"""pg_advisory_xact_lock key ("rcstmigr"); any bigint unlikely to collide with other apps."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_core(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_links",
        frozen,
        Column("team_id", String(SLACK_ID), primary_key=True),
        Column("user_id", String(SLACK_ID), primary_key=True),
        Column("extension_id", String(SLACK_ID), nullable=False),
        Column("source", String(16), nullable=False),
        Column("linked_at", UTCDateTime, nullable=False),
        Index("rcstatus_links_extension", "team_id", "extension_id", unique=True),
    )
    Table(
        "rcstatus_preferences",
        frozen,
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
    )
    Table(
        "rcstatus_stars",
        frozen,
        Column("team_id", String(SLACK_ID), primary_key=True),
        Column("user_id", String(SLACK_ID), primary_key=True),
        Column("starred_id", String(SLACK_ID), primary_key=True),
        Column("position", Integer, nullable=False),
    )
    Table(
        "rcstatus_workspace_defaults",
        frozen,
        Column("team_id", String(SLACK_ID), primary_key=True),
        Column("call_text", String(STATUS_TEXT)),
        Column("call_emoji", String(EMOJI)),
        Column("meeting_text", String(STATUS_TEXT)),
        Column("meeting_emoji", String(EMOJI)),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    Table(
        "rcstatus_claims",
        frozen,
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
    Table(
        "rcstatus_presence",
        frozen,
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
    )
    # Bolt's tables come from slack_sdk's own builders so its queries always match them;
    # checkfirst keeps the rows of a deployment that created them before rcstatus managed them.
    AsyncSQLAlchemyInstallationStore.build_installations_table(frozen, schema.SLACK_INSTALLATIONS)
    AsyncSQLAlchemyInstallationStore.build_bots_table(frozen, schema.SLACK_BOTS)
    AsyncSQLAlchemyOAuthStateStore.build_oauth_states_table(frozen, schema.SLACK_OAUTH_STATES)
    frozen.create_all(conn, checkfirst=True)


def _v2_watches(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_watches",
        frozen,
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
    frozen.create_all(conn)


def _v3_disconnected_notice(conn: Connection) -> None:
    column_type = UTCDateTime().compile(dialect=conn.dialect)
    conn.exec_driver_sql(
        "ALTER TABLE rcstatus_preferences ADD COLUMN disconnected_notified_at " + column_type
    )


def _v4_owned_links(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_link_requests",
        frozen,
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
    Table(
        "rcstatus_link_events",
        frozen,
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
    Table(
        "rcstatus_link_notices",
        frozen,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("team_id", String(SLACK_ID), nullable=False),
        Column("user_id", String(SLACK_ID), nullable=False),
        Column("event_id", Integer, nullable=False),
        Index("rcstatus_link_notices_user", "team_id", "user_id"),
    )
    frozen.create_all(conn)


def _v5_dm_outbox(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_dm_outbox",
        frozen,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("team_id", String(SLACK_ID), nullable=False),
        Column("user_id", String(SLACK_ID), nullable=False),
        Column("text", Text, nullable=False),
        Column("blocks", Text),
        Column("watch_id", Integer, unique=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("due_at", UTCDateTime, nullable=False),
        Column("give_up_at", UTCDateTime, nullable=False),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", String(64)),
        Index("rcstatus_dm_outbox_due", "team_id", "due_at"),
    )
    frozen.create_all(conn)


def _v7_api(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_api_keys",
        frozen,
        Column("id", String(SLACK_ID), primary_key=True),
        Column("name", String(100), nullable=False),
        Column("scopes", String(200), nullable=False),
        Column("key_hash", String(64), nullable=False, unique=True),
        Column("created_at", UTCDateTime, nullable=False),
        Column("revoked_at", UTCDateTime),
    )
    frozen.create_all(conn)
    conn.exec_driver_sql(
        "ALTER TABLE rcstatus_preferences ADD COLUMN share BOOLEAN NOT NULL DEFAULT true"
    )


def _v8_api_events(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_api_events",
        frozen,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("team_id", String(SLACK_ID), nullable=False),
        Column("at", UTCDateTime, nullable=False),
        Column("user_id", String(SLACK_ID), nullable=False),
        Column("data", Text, nullable=False),
        Index("rcstatus_api_events_team", "team_id", "id"),
        Index("rcstatus_api_events_at", "at"),
    )
    frozen.create_all(conn)


def _v9_webhooks(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_webhooks",
        frozen,
        Column("id", String(SLACK_ID), primary_key=True),
        Column("team_id", String(SLACK_ID), nullable=False),
        Column("url", String(2048), nullable=False),
        Column("secret", String(128), nullable=False),
        Column("people", Text),
        Column("availability", String(200)),
        Column("description", String(500), nullable=False),
        Column("enabled", Boolean, nullable=False),
        Column("disabled_reason", String(200)),
        Column("created_by", String(SLACK_ID), nullable=False),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
        Column("event_cursor", Integer, nullable=False),
        Column("last_success_at", UTCDateTime),
        Index("rcstatus_webhooks_team", "team_id", "created_at"),
    )
    Table(
        "rcstatus_webhook_deliveries",
        frozen,
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
    frozen.create_all(conn)


def _v10_rc_session(conn: Connection) -> None:
    frozen = MetaData()
    Table(
        "rcstatus_rc_sessions",
        frozen,
        Column("id", String(64), primary_key=True),
        Column("data", Text, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    )
    frozen.create_all(conn)


_V11_FLAGS: Final = ("sync_meetings", "snooze", "huddle_busy", "call_types")
_V11_TEXTS: Final = (
    "external_call_text",
    "internal_call_text",
    "inbound_call_text",
    "outbound_call_text",
)


def _v11_controls(conn: Connection) -> None:
    # Nullable on both tables: a person's NULL means "the workspace's choice", the workspace's
    # NULL means "the built-in one", so an admin's later default reaches everyone who never chose.
    for table in ("rcstatus_preferences", "rcstatus_workspace_defaults"):
        for flag in _V11_FLAGS:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {flag} BOOLEAN")
        for name in _V11_TEXTS:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} VARCHAR({STATUS_TEXT})")
    conn.exec_driver_sql("ALTER TABLE rcstatus_presence ADD COLUMN call_party VARCHAR(16)")


def _v12_leader_lease(conn: Connection) -> None:
    frozen = MetaData()
    lease = Table(
        "rcstatus_leader_lease",
        frozen,
        Column("name", String(32), primary_key=True),
        Column("holder", String(128)),
        Column("epoch", BigInteger, nullable=False),
        Column("acquired_at", UTCDateTime),
        Column("expires_at", UTCDateTime, nullable=False),
    )
    Table(
        "rcstatus_extensions",
        frozen,
        Column("id", String(SLACK_ID), primary_key=True),
        Column("number", String(SLACK_ID), nullable=False),
        Column("name", String(STATUS_TEXT), nullable=False),
        Column("email", String(STATUS_TEXT)),
    )
    frozen.create_all(conn)
    # One row from the start: taking the lease is then always an UPDATE, which PostgreSQL
    # serialises on the row, where two replicas racing to INSERT it would need a retry.
    conn.execute(
        insert(lease).values(
            name="leader", holder=None, epoch=0, expires_at=datetime(1970, 1, 1, tzinfo=UTC)
        )
    )


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "links, preferences, stars, workspace defaults, saved statuses, presence, Slack installs",
        _v1_core,
    ),
    Migration(2, "watches for /rcstatus notify", _v2_watches),
    Migration(3, "remember when a person was asked to reconnect Slack", _v3_disconnected_notice),
    Migration(4, "link requests, the audit trail of link changes, and notices", _v4_owned_links),
    Migration(5, "an outbox of DMs, retried until Slack accepts them", _v5_dm_outbox),
    Migration(7, "API keys, and whether each person shares presence with other systems", _v7_api),
    Migration(8, "availability changes for the API's stream and webhooks", _v8_api_events),
    Migration(9, "webhook endpoints and their deliveries", _v9_webhooks),
    Migration(10, "RingCentral's session, encrypted, kept across restarts", _v10_rc_session),
    Migration(
        11,
        "snooze, huddle and meeting switches, per-call-type wording, and each call's party",
        _v11_controls,
    ),
    Migration(
        12,
        "the leader's lease and epoch, and the extension listing it shares with the replicas",
        _v12_leader_lease,
    ),
)
LATEST_VERSION: Final = MIGRATIONS[-1].version


def _applied_version(conn: Connection) -> int:
    if not inspect(conn).has_table(schema.SCHEMA_VERSION):
        return 0
    found = conn.execute(select(func.max(schema.schema_version.c.version))).scalar_one()
    return int(found or 0)


def _upgrade(conn: Connection, steps: Sequence[Migration], target: int) -> int:
    schema.schema_version.create(conn, checkfirst=True)
    current = _applied_version(conn)
    known = steps[-1].version
    if current > known:
        raise StoreError(
            f"the database schema is at version {current}, newer than this rcstatus knows "
            f"({known}); upgrade rcstatus before starting it against this database"
        )
    for migration in steps:
        if current < migration.version <= target:
            migration.apply(conn)
            conn.execute(
                insert(schema.schema_version).values(
                    version=migration.version,
                    description=migration.description,
                    applied_at=datetime.now(UTC),
                )
            )
            current = migration.version
    return current


async def upgrade(
    engine: AsyncEngine,
    *,
    target: int | None = None,
    steps: Sequence[Migration] = MIGRATIONS,
) -> int:
    """Apply every step above the database's version up to `target` (default: all); returns the
    version reached. `steps` is for tests that need a step of their own."""
    last = steps[-1].version
    goal = last if target is None else target
    if not 0 <= goal <= last:
        raise ValueError(f"target must be between 0 and {last}")
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
        return await conn.run_sync(_upgrade, steps, goal)


async def applied_version(engine: AsyncEngine) -> int:
    """The version recorded in the database (0 for an empty one)."""
    async with engine.begin() as conn:
        return await conn.run_sync(_applied_version)
