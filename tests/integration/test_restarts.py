"""Restarts in a row: RingCentral's stored session and WebSocket token spare each a wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.integration.bot_harness import BotProcess, simulators, write_env

RESTARTS = 5


async def _probe_liveness(url: str, answers: Counter[int]) -> None:
    """Ask /healthz as a platform's liveness probe would, counting every answer by status."""
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    answers[response.status] += 1
            await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_five_restarts_within_a_minute_never_wait_for_ringcentral(tmp_path: Path) -> None:
    # Real time: RingCentral's Auth group allows 5 logins, refreshes and WebSocket tokens a
    # minute, and each start used to spend one token, so the fourth or fifth restart waited a
    # minute. Tokens reusable for 80 % of their life is RingCentral's own library's reading
    # (reference §5.2); test_rc_session.py covers a gateway that takes each token once.
    switches = {"ws_token_single_use": False}
    async with simulators(scale=1.0, rc_switches=switches) as sims:
        bot = BotProcess(sims, write_env(sims, tmp_path))
        answers: Counter[int] = Counter()
        probe = asyncio.create_task(_probe_liveness(sims.app_url + "/healthz", answers))
        try:
            await bot.start()  # until /readyz answers 200: both platforms connected
            assert sims.rc.stats()["logins"] == 1
            for _ in range(RESTARTS):
                await bot.kill()
                await bot.start()
            stats = sims.rc.stats()
        finally:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
            assert await bot.terminate() == 0
    log = bot.log.read_text()
    # Each restart took up the stored session: no JWT login, which RingCentral allows 5 a minute.
    assert stats["logins"] == 1, log[-3000:]
    # (Taken up as it was; one that had reached its refresh time, under a slow machine, would be
    # refreshed instead, which is no login either.)
    assert "RingCentral session resumed from the store" in log, log[-3000:]
    # ...and the saved WebSocket token: no start was refused by, or waited on, the Auth group.
    assert stats["rate_limited_by_group"]["auth"] == 0, stats
    assert "WebSocket tokens a minute; waiting" not in log, log[-3000:]
    assert stats["ws_tokens"] < 1 + RESTARTS, stats
    # Liveness answered throughout, never 503 (connection refused only while no process ran).
    assert answers[200] > 0
    assert set(answers) == {200}, answers
