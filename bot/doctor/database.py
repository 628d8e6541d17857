"""The database check: DATABASE_URL opens, its schema suits this version, and what it stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import URL, Connection, column, func, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.config import Settings
from bot.doctor.report import Section
from bot.store import LATEST_VERSION, StoreError, schema
from bot.store.engine import FAILURES, build_engine, describe, failure, parse_url
from bot.store.migrations import applied_version


@dataclass(slots=True)
class StoredState:
    """What the bot has stored that the people check needs."""

    manual_links: dict[str, dict[str, str]] = field(default_factory=dict)
    """team → Slack user → extension id, for links made with /rcstatus link."""
    connected: dict[str, set[str]] = field(default_factory=dict)
    """team → Slack users with a stored user token."""
    leader: str | None = None
    """Who leads the replicas and since when (PostgreSQL), in words; None if nobody ever has."""


@dataclass(slots=True)
class DatabaseFacts:
    """The database's findings, and what it stores if it could be read."""

    section: Section
    state: StoredState | None = None


async def check_database(settings: Settings) -> DatabaseFacts:
    """Open the database read-only, never creating or changing it, and read what people need."""
    facts = DatabaseFacts(Section("Database"))
    section = facts.section
    try:
        url = parse_url(settings.database_url)
    except StoreError as exc:
        section.error(
            str(exc), "set DATABASE_URL to sqlite+aiosqlite:///rcstatus.db or a postgresql:// URL"
        )
        return facts
    where = describe(url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:":
            section.warning(
                "DATABASE_URL is an in-memory SQLite database: links and connections are lost "
                "at every restart",
                "use a file, such as sqlite+aiosqlite:///rcstatus.db",
            )
            facts.state = StoredState()
            return facts
        path, exists, folder = _locate_sqlite_file(database)
        if not exists:
            if not _is_dir(folder):
                section.error(
                    f"cannot create {where}: the folder {folder} does not exist",
                    "create the folder or point DATABASE_URL elsewhere",
                )
                return facts
            section.ok(f"{where} does not exist yet; the bot creates it at first start")
            facts.state = StoredState()
            return facts
        engine = create_async_engine(_read_only_sqlite(url, path))
    else:
        try:
            engine = build_engine(url, echo=False)
        except StoreError as exc:
            section.error(str(exc), "install the driver or fix DATABASE_URL")
            return facts
    try:
        version = await applied_version(engine)
        state = await _read_state(engine, settings.slack_client_id)
    except FAILURES as exc:
        section.error(
            str(failure(url, "reading", exc)),
            "check DATABASE_URL and that the database accepts connections",
        )
        return facts
    finally:
        await engine.dispose()
    if version > LATEST_VERSION:
        section.error(
            f"{where} is at schema version {version}, newer than this rcstatus ({LATEST_VERSION})",
            "upgrade rcstatus before running it against this database",
        )
    elif version == 0:
        section.ok(f"{where} is empty; the bot creates its tables at first start")
    else:
        upgrade = "" if version == LATEST_VERSION else f", upgraded to {LATEST_VERSION} at start"
        section.ok(f"{where} is readable (schema version {version}{upgrade})")
    if url.get_backend_name() == "sqlite":
        section.ok("one process leads alone on SQLite (role leader); for replicas, use PostgreSQL")
    elif state.leader is not None:
        section.ok(state.leader)
    facts.state = state
    return facts


def _locate_sqlite_file(database: str) -> tuple[Path, bool, Path]:
    """The file, whether it exists, and its folder: where the bot would create it."""
    path = Path(database.removeprefix("file:").split("?", 1)[0]).expanduser().resolve()
    return path, path.is_file(), path.parent


def _is_dir(path: Path) -> bool:
    return path.is_dir()


def _read_only_sqlite(url: URL, path: Path) -> URL:
    """The same file opened read-only, so diagnosing never writes to the bot's database."""
    return url.set(
        drivername="sqlite+aiosqlite",
        database=f"file:{quote(str(path))}",
        query={"mode": "ro", "uri": "true"},
    )


async def _read_state(engine: AsyncEngine, client_id: str | None) -> StoredState:
    async with engine.connect() as conn:
        return await conn.run_sync(_read_state_sync, client_id)


def _read_state_sync(conn: Connection, client_id: str | None) -> StoredState:
    state = StoredState()
    tables = set(inspect(conn).get_table_names())
    links = schema.links
    if links.name in tables:
        rows = conn.execute(
            select(links.c.team_id, links.c.user_id, links.c.extension_id).where(
                links.c.source == "manual"
            )
        )
        for team_id, user_id, extension_id in rows:
            state.manual_links.setdefault(team_id, {})[user_id] = extension_id
    if schema.SLACK_INSTALLATIONS in tables:
        installations = table(
            schema.SLACK_INSTALLATIONS,
            column("client_id"),
            column("team_id"),
            column("user_id"),
            column("user_token"),
        )
        query = (
            select(installations.c.team_id, installations.c.user_id)
            .where(installations.c.user_token.is_not(None))
            .distinct()
        )
        if client_id:
            query = query.where(installations.c.client_id == client_id)
        for team_id, user_id in conn.execute(query):
            if team_id and user_id:
                state.connected.setdefault(team_id, set()).add(user_id)
    if schema.leader_lease.name in tables and conn.dialect.name == "postgresql":
        state.leader = _leader(conn)
    return state


def _leader(conn: Connection) -> str | None:
    lease = schema.leader_lease
    row = conn.execute(
        select(
            lease.c.holder,
            lease.c.epoch,
            lease.c.acquired_at,
            lease.c.expires_at,
            func.clock_timestamp().label("now"),
        )
    ).first()
    if row is None or row.holder is None:
        return "no replica has led yet (role leader goes to the first `run` to start)"
    left = (row.expires_at - row.now).total_seconds()
    since = row.acquired_at.isoformat(timespec="seconds") if row.acquired_at else "?"
    if left <= 0:
        return (
            f"no replica leads now: the lease of {row.holder} (epoch {row.epoch}) expired "
            f"{-left:.0f} s ago; a running replica takes over within a second or two"
        )
    return (
        f"role leader: replica {row.holder}, epoch {row.epoch}, leader_since {since} "
        f"(lease renewed, {left:.0f} s left); every other replica is a follower"
    )
