"""RingCentral's session kept in the store: taken up again, refreshed, or replaced by a login."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.config import Secret
from bot.ringcentral.client import RingCentralClient
from bot.ringcentral.vault import SessionVault
from bot.sim.ringcentral import RingCentralSimulator
from bot.store import Store
from tests.integration.test_ringcentral_client import ACCOUNT_PRESENCE, SCALE, simulator

KEY = Fernet.generate_key().decode()


@contextlib.asynccontextmanager
async def store_at(path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def client_with(sim: RingCentralSimulator, store: Store, key: str = KEY) -> RingCentralClient:
    """A client as the bot builds it after a restart: new process, same store and settings."""
    jwt = Secret(sim.jwt)
    vault = SessionVault(store, Secret(key), server_url=sim.url, client_id=sim.client_id, jwt=jwt)
    return RingCentralClient(
        server_url=sim.url,
        client_id=sim.client_id,
        client_secret=Secret(sim.client_secret),
        jwt=jwt,
        rate_window=SCALE.seconds(60),
        max_attempts=1,
        session=vault,
    )


async def presence_answers(client: RingCentralClient) -> bool:
    return (await client.get(ACCOUNT_PRESENCE, {"perPage": 1})).status == 200


async def test_a_restart_takes_up_the_session_and_the_store_holds_no_token(
    tmp_path: Path,
) -> None:
    async with simulator() as sim, store_at(tmp_path / "bot.db") as store:
        first = client_with(sim, store)
        await first.login()
        second = client_with(sim, store)
        await second.login()
        answered = await presence_answers(second)
        stats = sim.stats()
        issued = sim.issued_secrets()
    raw = (tmp_path / "bot.db").read_bytes()

    assert answered
    assert (stats["logins"], second.stats.logins, second.stats.resumed) == (1, 0, 1)
    # Encrypted at rest: no token the simulator issued is in the database file.
    assert [token for token in issued if token.encode() in raw] == []


async def test_a_dead_access_token_is_refreshed_and_a_dead_session_logs_in_again(
    tmp_path: Path,
) -> None:
    async with simulator() as sim, store_at(tmp_path / "bot.db") as store:
        await client_with(sim, store).login()
        sim.expire_tokens()  # the access token dies; the refresh token lives
        refreshed = client_with(sim, store)
        assert await presence_answers(refreshed)
        sim.revoke_sessions()  # the whole session is gone: only the JWT is left
        replaced = client_with(sim, store)
        assert await presence_answers(replaced)
        stats = sim.stats()

    assert (refreshed.stats.resumed, refreshed.stats.refreshes, refreshed.stats.logins) == (1, 1, 0)
    assert (replaced.stats.resumed, replaced.stats.logins) == (1, 1)
    assert stats["logins"] == 2


async def test_a_changed_key_logs_in_with_the_jwt_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with simulator() as sim, store_at(tmp_path / "bot.db") as store:
        await client_with(sim, store).login()
        with caplog.at_level(logging.INFO):
            other = client_with(sim, store, key=Fernet.generate_key().decode())
            assert await presence_answers(other)
        stats = sim.stats()

    assert (other.stats.resumed, other.stats.logins, stats["logins"]) == (0, 1, 2)
    assert "does not open with RINGCENTRAL_TOKEN_KEY" in caplog.text
