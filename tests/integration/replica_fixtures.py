"""Replica buses on a private PostgreSQL schema: running them, and cutting their sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.replicas.bus import Envelope, ReplicaBus
from tests.helpers import wait_until
from tests.store_fixtures import NO_POSTGRES, POSTGRES_ENV, postgres_admin_url, private_postgres

needs_postgres = (
    pytest.mark.postgres,
    pytest.mark.skipif(not __import__("os").environ.get(POSTGRES_ENV), reason=NO_POSTGRES),
)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A URL whose role and schema belong to this test alone."""
    async with private_postgres(postgres_admin_url()) as url:
        yield url


class Heard:
    """What one topic's handler received, in order."""

    def __init__(self) -> None:
        self.messages: list[tuple[Any, Envelope]] = []

    async def __call__(self, message: Any, envelope: Envelope) -> None:
        self.messages.append((message, envelope))

    @property
    def bodies(self) -> list[Any]:
        return [message for message, _ in self.messages]


class Epoch:
    """A replica's epoch as its lease would say it; None while it does not lead."""

    def __init__(self, value: int | None = None) -> None:
        self.value = value

    def __call__(self) -> int | None:
        return self.value


def bus(url: str, replica_id: str, epoch: Epoch | None = None) -> ReplicaBus:
    return ReplicaBus(url, replica_id=replica_id, epoch=epoch or Epoch())


@asynccontextmanager
async def running(*buses: ReplicaBus) -> AsyncIterator[None]:
    """Each bus's `run` task, connected before the body runs, stopped and awaited after."""
    tasks = [asyncio.create_task(b.run()) for b in buses]
    try:
        await wait_until(lambda: all(b.connected for b in buses), message="the buses to listen")
        yield
    finally:
        for b in buses:
            await b.stop()
        await asyncio.gather(*tasks)


async def terminate_bus_sessions(url: str) -> int:
    """What a PostgreSQL restart does to the buses of `url`'s role: their sessions end."""
    admin = create_async_engine(postgres_admin_url(), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            ended = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = :role AND application_name = 'rcstatus-bus'"
                ),
                {"role": make_url(url).username},
            )
            return len(ended.all())
    finally:
        await admin.dispose()
