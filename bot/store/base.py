"""The engine's lifecycle, Bolt's stores on the same engine, and the transaction queries run in."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Final, Self, TypeVar

from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.store import migrations, schema
from bot.store.engine import FAILURES, build_engine, describe, failure, parse_url
from bot.store.fence import LeadershipLost, check_fence, current_term
from bot.store.oauth_states import DEFAULT_MAX_LIVE_STATES, BoundedOAuthStateStore
from bot.store.records import StoreError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

CHUNK: Final = 1000
"""Rows or ids per statement: under every driver's bound-parameter limit, even with 16 columns."""
DEFAULT_OAUTH_STATE_SECONDS: Final = 600
"""Bolt's own default lifetime of an OAuth state."""
HEALTH_TIMEOUT: Final = 3.0
"""Seconds the health probe waits for the database: well under a platform's health-check
timeout, well over a healthy database's answer even behind a busy SQLite writer."""
HEALTH_REUSE: Final = 1.0
"""Seconds one probe's answer serves every /readyz request, so a flood of them is one query."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def chunks(items: Sequence[_T], size: int = CHUNK) -> Iterable[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ConcurrentChange(StoreError):
    """A uniqueness rule stopped a write that raced with another replica's."""


class StoreBase:
    """The engine's lifecycle, Bolt's stores on it, and the transaction every query runs in."""

    def __init__(
        self,
        database_url: str,
        *,
        client_id: str | None = None,
        echo: bool = False,
        oauth_state_seconds: int = DEFAULT_OAUTH_STATE_SECONDS,
        max_oauth_states: int = DEFAULT_MAX_LIVE_STATES,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._url = parse_url(database_url)
        self._client_id = client_id
        self._echo = echo
        self._oauth_state_seconds = oauth_state_seconds
        self._max_oauth_states = max_oauth_states
        self._clock = clock
        self._engine: AsyncEngine | None = None
        self._installation_store: AsyncSQLAlchemyInstallationStore | None = None
        self._oauth_state_store: BoundedOAuthStateStore | None = None
        self._health_lock = asyncio.Lock()
        self._health: tuple[float, str | None] | None = None

    # ----------------------------------------------------------------------------- lifecycle

    @property
    def location(self) -> str:
        """Where the data lives, safe to log: host and database, or the SQLite file."""
        return describe(self._url)

    async def open(self) -> None:
        """Connect and bring the schema up to date; a second call does nothing."""
        if self._engine is not None:
            return
        engine = build_engine(self._url, echo=self._echo)
        try:
            version = await migrations.upgrade(engine)
        except StoreError:
            await engine.dispose()
            raise
        except FAILURES as exc:
            await engine.dispose()
            raise failure(self._url, "opening the database", exc) from exc
        self._engine = engine
        if self._client_id is not None:
            self._installation_store = AsyncSQLAlchemyInstallationStore(
                client_id=self._client_id,
                engine=engine,
                bots_table_name=schema.SLACK_BOTS,
                installations_table_name=schema.SLACK_INSTALLATIONS,
                logger=logging.getLogger("bot.store.installations"),
            )
        self._oauth_state_store = BoundedOAuthStateStore(
            max_live=self._max_oauth_states,
            expiration_seconds=self._oauth_state_seconds,
            engine=engine,
            logger=logging.getLogger("bot.store.oauth_state"),
            table_name=schema.SLACK_OAUTH_STATES,
        )
        log.info("store open: %s, schema version %d", self.location, version)

    async def close(self) -> None:
        """Close every pooled connection; the store can be opened again."""
        engine, self._engine = self._engine, None
        self._installation_store = None
        self._oauth_state_store = None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    @property
    def engine(self) -> AsyncEngine:
        """The open engine, for the few callers that need a connection of their own."""
        if self._engine is None:
            raise StoreError("the store is not open; call open() first")
        return self._engine

    @property
    def installation_store(self) -> AsyncSQLAlchemyInstallationStore:
        """Bolt's installation store (bot and user tokens) on this database."""
        self.engine  # noqa: B018 - raises the clear "not open" error
        if self._installation_store is None:
            raise StoreError("the installation store needs the Slack app's client id")
        return self._installation_store

    @property
    def oauth_state_store(self) -> BoundedOAuthStateStore:
        """Bolt's OAuth state store on this database, bounded (see `BoundedOAuthStateStore`)."""
        self.engine  # noqa: B018 - raises the clear "not open" error
        assert self._oauth_state_store is not None
        return self._oauth_state_store

    async def health(self, *, within: float = HEALTH_TIMEOUT) -> str | None:
        """None while the database answers a trivial query `within` seconds, else why it does not
        (naming the database, never the password)."""
        async with self._health_lock:
            if self._health is not None and time.monotonic() - self._health[0] < HEALTH_REUSE:
                return self._health[1]
            problem = await self._probe(within)
            self._health = (time.monotonic(), problem)
            return problem

    async def _probe(self, within: float) -> str | None:
        try:
            async with asyncio.timeout(within):
                async with self.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
        except TimeoutError:
            return f"{self.location} did not answer within {within:g} s"
        except StoreError as exc:
            return str(exc)
        except FAILURES as exc:
            return str(failure(self._url, "reaching the database", exc))
        return None

    async def purge_expired_oauth_states(self) -> int:
        """Delete OAuth states past their lifetime (abandoned connection attempts)."""
        try:
            return await self.oauth_state_store.purge_expired()
        except FAILURES as exc:
            raise failure(self._url, "deleting expired OAuth states", exc) from exc

    @staticmethod
    async def _serialise(conn: AsyncConnection, lock_class: int, name: str) -> None:
        """Order this transaction after any other holding the same (class, name) lock.

        SQLite's BEGIN IMMEDIATE already serialises writers. PostgreSQL's READ COMMITTED lets
        two transactions both count 19 and both insert, and a check that reads "nobody holds
        it" cannot lock a missing row: an advisory lock, released at commit, orders them.
        """
        if conn.dialect.name == "postgresql":
            await conn.execute(select(func.pg_advisory_xact_lock(lock_class, func.hashtext(name))))

    @asynccontextmanager
    async def _transaction(self, doing: str) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                await check_fence(conn)
                yield conn
        except LeadershipLost:
            raise
        except IntegrityError as exc:
            raise ConcurrentChange(f"{doing} collided with another change") from exc
        except DBAPIError as exc:
            raise failure(self._url, doing, exc) from exc
        except StatementError as exc:
            # A value our types refused (a naive datetime): the caller's bug, not the database's.
            if isinstance(exc.orig, ValueError | TypeError):
                raise exc.orig from None
            raise failure(self._url, doing, exc) from exc
        except FAILURES as exc:
            raise failure(self._url, doing, exc) from exc

    async def confirm_leading(self) -> None:
        """For a write the outside world cannot fence (a Slack status restored): raise unless the
        database answers and this replica's epoch is current. Free outside the leader's tasks."""
        if current_term() is None:
            return
        async with self._transaction("checking this replica still leads"):
            pass

    async def user_tokens(self, team_id: str) -> dict[str, str]:
        """Every person's latest user token in this workspace, as Bolt's store would find each."""
        installations = self.installation_store.installations
        c = installations.c
        async with self._transaction("reading user tokens") as conn:
            rows = await conn.execute(
                select(c.user_id, c.user_token)
                .where(
                    c.client_id == self.installation_store.client_id,
                    c.enterprise_id.is_(None),
                    c.team_id == team_id,
                    c.user_id.is_not(None),
                )
                .order_by(c.installed_at, c.id)
            )
            # Oldest first, so each person's latest installation is the one left standing.
            return {row.user_id: row.user_token for row in rows if row.user_token}

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        if self.engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)
