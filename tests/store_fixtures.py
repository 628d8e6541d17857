"""Database fixtures: a fresh SQLite file or a private PostgreSQL schema for each test.

PostgreSQL runs only when TEST_POSTGRES_URL names a server. Each test gets its own login role
whose search_path is a schema of the same name, so the store under test needs nothing but a
URL, and runs never see each other's rows. Both are dropped at teardown.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Final

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

POSTGRES_ENV: Final = "TEST_POSTGRES_URL"
NO_POSTGRES: Final = (
    f"{POSTGRES_ENV} is unset; set it (for example "
    "postgresql+asyncpg://postgres@127.0.0.1:5432/test) to run the PostgreSQL variants"
)

BACKENDS: Final = (
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=(
            pytest.mark.postgres,
            pytest.mark.skipif(not os.environ.get(POSTGRES_ENV), reason=NO_POSTGRES),
        ),
    ),
)


def postgres_admin_url() -> str:
    """The server CI provides; only called by tests that are not skipped for lack of it."""
    return os.environ[POSTGRES_ENV]


@asynccontextmanager
async def private_postgres(admin_url: str) -> AsyncIterator[str]:
    """A URL that logs in as a throwaway role whose tables land in its own schema."""
    role = f"rcstatus_test_{secrets.token_hex(6)}"
    password = secrets.token_hex(12)
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
            await conn.execute(text(f"CREATE SCHEMA {role} AUTHORIZATION {role}"))
            await conn.execute(text(f"ALTER ROLE {role} SET search_path = {role}"))
    except Exception as exc:
        await admin.dispose()
        pytest.fail(
            f"{POSTGRES_ENV} is set but PostgreSQL at {make_url(admin_url).host} cannot be used "
            f"({type(exc).__name__}: {exc}); start the server or unset {POSTGRES_ENV}"
        )
    try:
        url = make_url(admin_url).set(username=role, password=password)
        yield url.render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            # A test that failed mid-way may leave a session behind; it would block DROP ROLE.
            await conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :r"),
                {"r": role},
            )
            await conn.execute(text(f"DROP SCHEMA IF EXISTS {role} CASCADE"))
            await conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        await admin.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of each kind, as a URL the store accepts."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'rcstatus.db'}"
        return
    async with private_postgres(postgres_admin_url()) as url:
        yield url
