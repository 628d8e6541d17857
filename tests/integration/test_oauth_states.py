"""Bolt's OAuth states on SQLite and PostgreSQL: expired ones are deleted, live ones are capped."""

from __future__ import annotations

import pytest

from bot.store import Store
from bot.store.oauth_states import OAuthStatesFull
from tests.helpers import wait_until
from tests.store_fixtures import BACKENDS, database_url

__all__ = ["BACKENDS", "database_url"]  # the fixture, imported so pytest finds it here


async def test_live_states_are_capped_and_expired_ones_deleted(database_url: str) -> None:
    async with Store(database_url, oauth_state_seconds=1, max_oauth_states=5) as store:
        states = store.oauth_state_store
        issued = [await states.async_issue() for _ in range(5)]
        with pytest.raises(OAuthStatesFull, match="5 Slack connections"):
            await states.async_issue()
        assert await states.live_count() == 5
        # A state in use is still good, and consuming it makes room.
        assert await states.async_consume(issued[0])
        await states.async_issue()
        assert await states.live_count() == 5

        # Once they expire, the sweep deletes them all (and nobody can use them).
        async def swept() -> bool:
            await store.purge_expired_oauth_states()
            return await states.live_count() == 0

        await wait_until(swept, timeout=5, interval=0.2, message="the states to expire")
        assert not await states.async_consume(issued[1])


async def test_issuing_deletes_expired_states_first(database_url: str) -> None:
    async with Store(database_url, oauth_state_seconds=1, max_oauth_states=3) as store:
        states = store.oauth_state_store
        for _ in range(3):
            await states.async_issue()

        async def issued_again() -> bool:
            try:
                await states.async_issue()
            except OAuthStatesFull:
                return False
            return True

        await wait_until(issued_again, timeout=5, interval=0.2, message="room for a new state")
        assert await states.live_count() == 1
