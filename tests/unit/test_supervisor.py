"""The supervisor: crashed tasks come back, stop() ends everything within its grace period."""

from __future__ import annotations

import asyncio
import logging

import pytest

from bot.supervisor import Supervisor
from tests.helpers import wait_until


async def test_a_crashed_task_is_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[int] = []

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    supervisor = Supervisor(backoff_base=0.01, backoff_cap=0.05)
    with caplog.at_level(logging.ERROR):
        supervisor.start("flaky", flaky)
        await wait_until(lambda: len(runs) == 3)
    health = supervisor.health()["flaky"]
    assert health.restarts == 2
    assert health.running
    assert "RuntimeError: boom" in (health.last_error or "")
    assert sum("task flaky crashed" in r.getMessage() for r in caplog.records) == 2
    await supervisor.stop(grace=1)
    assert not supervisor.health()["flaky"].running


async def test_stop_asks_politely_then_cancels_what_is_left() -> None:
    stopped = asyncio.Event()
    finished_cleanly: list[str] = []

    async def polite() -> None:
        await stopped.wait()
        finished_cleanly.append("polite")

    async def stop_polite() -> None:
        stopped.set()

    async def stubborn() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            finished_cleanly.append("stubborn-cancelled")

    supervisor = Supervisor()
    supervisor.start("polite", polite, stop=stop_polite)
    supervisor.start("stubborn", stubborn)
    await asyncio.sleep(0)
    await asyncio.wait_for(supervisor.stop(grace=2), timeout=5)
    assert sorted(finished_cleanly) == ["polite", "stubborn-cancelled"]


async def test_a_task_that_returns_is_not_restarted() -> None:
    runs: list[int] = []

    async def once() -> None:
        runs.append(1)

    supervisor = Supervisor(backoff_base=0.01)
    supervisor.start("once", once)
    await wait_until(lambda: runs == [1] and not supervisor.health()["once"].running)
    await supervisor.stop()
    assert runs == [1]


def test_names_are_unique() -> None:
    async def scenario() -> None:
        supervisor = Supervisor()
        supervisor.start("x", asyncio.Event().wait)
        with pytest.raises(ValueError, match="already supervised"):
            supervisor.start("x", asyncio.Event().wait)
        await supervisor.stop()

    asyncio.run(scenario())
