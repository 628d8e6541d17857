"""Builds the async engine for a database URL and turns driver failures into `StoreError`s."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Final

from sqlalchemy import URL, Connection, event, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from bot.store.records import StoreError

log = logging.getLogger(__name__)

SUPPORTED: Final = "sqlite+aiosqlite:///path/to/file.db or postgresql+asyncpg://user@host/db"
CONNECT_TIMEOUT: Final = 10.0
"""Seconds to wait for PostgreSQL to accept a connection before reporting it unreachable."""
SQLITE_BUSY_TIMEOUT_MS: Final = 5000
IDLE_IN_TRANSACTION_MS: Final = "5000"
"""No transaction of ours waits on its client for seconds; one that does belongs to a paused
process, whose locks must not outlive the leader lease they would otherwise block."""
POOL_SIZE: Final = 5
"""PostgreSQL connections kept open (SQLAlchemy's default), with up to POOL_OVERFLOW more opened
for a burst and closed once it passes. Under the webhook benchmark's load that means 11 new
connections a second, yet every larger pool measured (8, 16 and 20 kept, with or without
overflow) let the webhook lanes and the fan-out fall into a lock convoy on the endpoints' rows:
the bot a third busy and delivering a quarter as much. See bench/results/README.md."""
POOL_OVERFLOW: Final = 10
PING_AFTER_IDLE: Final = 2.0
"""Seconds a pooled connection may sit unused before it is checked at checkout. A server
restart cuts idle connections; one used a moment ago is as good as checked. SQLAlchemy's
pool_pre_ping checked every checkout, with three round trips on asyncpg (BEGIN, a query,
ROLLBACK): a quarter of a webhook lane's transaction."""

FAILURES: Final = (SQLAlchemyError, OSError, TimeoutError)
"""What a database call can raise besides our own errors: wrapped DBAPI errors, raw socket errors
(asyncpg raises those before a connection exists) and connection timeouts."""


def parse_url(database_url: str) -> URL:
    """Parse a database URL; plain sqlite:// and postgres:// URLs get their async driver."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise StoreError(
            f"DATABASE_URL is not a database URL; expected {SUPPORTED}"
        ) from None  # the message would repeat the URL, password included
    backend = url.get_backend_name()
    if backend == "postgres":
        url = url.set(drivername="postgresql")
        backend = "postgresql"
    if url.drivername == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif url.drivername == "postgresql":
        url = url.set(drivername="postgresql+asyncpg")
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"rcstatus stores its data in SQLite or PostgreSQL, not {backend}; expected {SUPPORTED}"
        )
    return url


def describe(url: URL) -> str:
    """Where the data lives, for messages: host, port and database, never the password."""
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            return "an in-memory SQLite database"
        return f"the SQLite file {url.database}"
    host = url.host or "localhost"
    port = f":{url.port}" if url.port else ""
    user = f"{url.username}@" if url.username else ""
    return f"PostgreSQL at {user}{host}{port}/{url.database or ''}"


def failure(url: URL, doing: str, exc: BaseException) -> StoreError:
    """A StoreError for `exc`, naming the database and the driver's reason without secrets."""
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    reason = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    reason = f"{type(cause).__name__}: {reason}" if reason else type(cause).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return StoreError(f"{doing} failed on {describe(url)}: {reason[:300]}")


def _check_sqlite_path(url: URL) -> None:
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        return
    folder = Path(url.database).expanduser().resolve().parent
    if not folder.is_dir():
        raise StoreError(
            f"cannot create {describe(url)}: the folder {folder} does not exist; "
            "create it or point DATABASE_URL elsewhere"
        )


def _sqlite_events(engine: AsyncEngine) -> None:
    """Real transactions for SQLite: the sqlite3 module's own BEGIN handling skips SELECTs and DDL,
    which would let a read-then-write interleave with another writer and break transactional
    migrations. BEGIN IMMEDIATE takes the write lock up front, so concurrent writers (a second
    process on the same file) wait on busy_timeout instead of failing on a lock upgrade."""

    driver_error = engine.dialect.loaded_dbapi.OperationalError

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            # WAL lets readers and the writer overlap, and it persists in the file. Switching
            # needs the file to itself and ignores busy_timeout, so when another connection is
            # busy this one carries on in the default mode: slower, just as correct.
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except driver_error as exc:
                log.debug("SQLite stays in its default journal mode for now: %s", exc)
            cursor.execute("PRAGMA journal_mode")
            if str(cursor.fetchone()[0]).lower() == "wal":
                # Durable across power loss in WAL mode; only the last commits may roll back.
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def build_engine(url: URL, *, echo: bool, ping_after_idle: float = PING_AFTER_IDLE) -> AsyncEngine:
    """An engine for `url`; nothing connects until the first query."""
    options: dict[str, Any] = {
        "echo": echo,
        # Installation rows carry tokens: never put bound values into logs or error messages.
        "hide_parameters": True,
    }
    if url.get_backend_name() == "sqlite":
        _check_sqlite_path(url)
        # One connection: SQLite has one writer anyway, and a single connection serialises the
        # bot's transactions instead of making them wait on file locks.
        options.update(poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0)
    else:
        options.update(pool_size=POOL_SIZE, max_overflow=POOL_OVERFLOW)
        connect_args: dict[str, Any] = {
            # A replica paused mid-transaction (SIGSTOP, a frozen VM) would hold its locks, the
            # leader lease's key-share lock among them, for as long as it stays paused: the server
            # ends such a session instead, so a successor can take over.
            "server_settings": {"idle_in_transaction_session_timeout": IDLE_IN_TRANSACTION_MS},
        }
        if "timeout" not in url.query:
            connect_args["timeout"] = CONNECT_TIMEOUT
        options["connect_args"] = connect_args
    try:
        engine = create_async_engine(url, **options)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(f"cannot use {describe(url)}: {exc}; expected {SUPPORTED}") from None
    if url.get_backend_name() == "sqlite":
        _sqlite_events(engine)
    else:
        _ping_idle_connections(engine, ping_after_idle)
    return engine


def _ping_idle_connections(engine: AsyncEngine, after: float) -> None:
    """Check a connection at checkout only when it sat unused for `after` seconds; one that no
    longer answers is replaced by the pool (it tries a fresh one) rather than handed out."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        returned = record.info.get("returned_at")
        if returned is None or time.monotonic() - returned < after:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("an idle pooled connection no longer answers") from exc
