"""The log of availability changes on SQLite and PostgreSQL: ids only ever grow, pruning or not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.store import Store
from tests.store_fixtures import database_url

__all__ = ["database_url"]  # the fixture, imported so pytest finds it here

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


async def test_an_id_is_never_given_twice_even_when_everything_is_old(database_url: str) -> None:
    async with Store(database_url) as store:
        first = await store.append_event("T1", T0, "U1", {"availability": "on_call"})
        second = await store.append_event("T1", T0, "U1", {"availability": "available"})
        removed = await store.prune_events(T0 + timedelta(hours=2), keep_at_most=1000)
        assert removed == 1  # the newest stays, so the next id cannot go back
        kept = await store.events_after("T1", 0, 10)
        assert [e.id for e in kept] == [second]
        third = await store.append_event("T1", T0 + timedelta(hours=3), "U1", {"x": 1})
        assert third > second > first
        assert await store.prune_events(T0 + timedelta(hours=5), keep_at_most=1) == 1
        assert [e.id for e in await store.events_after("T1", 0, 10)] == [third]


async def test_pruning_an_empty_log_removes_nothing(database_url: str) -> None:
    async with Store(database_url) as store:
        assert await store.prune_events(T0, keep_at_most=10) == 0
