"""RingCentral's session kept in the store: taken up again, refreshed, or replaced by a login."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from bot.config import Secret
from bot.ringcentral.client import RingCentralClient
from bot.ringcentral.subscriber import LinkState, SessionStart, Subscriber, SubscriberHealth
from bot.ringcentral.vault import SessionVault
from bot.sim.ringcentral import RingCentralSimulator
from bot.store import Store
from tests.helpers import wait_until
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


class Starts:
    """Counts the sessions the subscriber began; the notifications themselves do not matter here."""

    def __init__(self) -> None:
        self.starts: list[SessionStart] = []

    async def on_notification(self, envelope: dict[str, Any]) -> None:
        return None

    async def on_session_start(self, start: SessionStart) -> None:
        self.starts.append(start)


async def subscribe_once(client: RingCentralClient) -> SubscriberHealth:
    """Start the bot's subscriber, wait until it is subscribed, then stop it as a shutdown does."""
    sink = Starts()
    subscriber = Subscriber(client, sink, backoff_base=0.05)
    running = asyncio.create_task(subscriber.run())
    try:
        await wait_until(lambda: sink.starts, message="a subscribed WebSocket session")
    finally:
        await subscriber.stop()
        await running
    assert subscriber.health.state is LinkState.STOPPED
    assert sink.starts == [SessionStart.NEW]
    return subscriber.health


@pytest.mark.parametrize("single_use", [False, True], ids=["reusable", "single-use"])
async def test_a_restart_offers_the_saved_ws_token_and_replaces_a_refused_one(
    tmp_path: Path, single_use: bool
) -> None:
    async with simulator() as sim, store_at(tmp_path / "bot.db") as store:
        # 600 s: RingCentral's own library's figure, so the token is well inside 80 % of its life.
        sim.set_switches(ws_token_ttl=600, ws_token_single_use=single_use)
        before = await subscribe_once(client_with(sim, store))
        after = await subscribe_once(client_with(sim, store))
        stats = sim.stats()
        issued = sim.issued_secrets()
    raw = (tmp_path / "bot.db").read_bytes()

    assert (before.kept_tokens_offered, before.connections) == (0, 1)
    # The restart offers the saved token first. A gateway that takes a token once refuses it;
    # a new one is fetched at once, which is what a start without a saved token costs.
    assert (after.kept_tokens_offered, after.kept_tokens_refused, after.connections) == (
        1,
        int(single_use),
        1,
    )
    assert stats["ws_tokens"] == 1 + int(single_use)
    assert (stats["logins"], stats["rate_limited"]) == (1, 0)
    # The saved WebSocket token is sealed with the session: none is in the database file.
    assert [token for token in issued if token.encode() in raw] == []


async def test_a_ws_token_past_80_percent_of_its_life_is_never_offered(tmp_path: Path) -> None:
    async with simulator() as sim, store_at(tmp_path / "bot.db") as store:
        # 30 s at time scale 60: `expires_in` is 1 s, so 80 % of the token's life is 0.8 s.
        sim.set_switches(ws_token_ttl=30, ws_token_single_use=False)
        first = client_with(sim, store)
        await subscribe_once(first)

        async def aged() -> bool:
            return await first.kept_ws_token() is None

        await wait_until(aged, message="the kept token to pass 80 % of its life")
        after = await subscribe_once(client_with(sim, store))
        stats = sim.stats()

    assert after.kept_tokens_offered == 0
    assert (stats["ws_tokens"], stats["logins"]) == (2, 1)
