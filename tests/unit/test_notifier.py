"""Notify-when-free under the coordinator, in virtual time: one DM once the target stays free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.presence import TelephonyStatus
from tests.unit.hub import TEAM, Hub, running_hub, virtual

WATCHER, TARGET, EXT = "U1", "U2", "102"
CONNECTED, ENDED = TelephonyStatus.CALL_CONNECTED, TelephonyStatus.NO_CALL


async def watch(hub: Hub) -> None:
    until = datetime.fromtimestamp(hub.wall(), UTC) + timedelta(hours=8)
    await hub.store.add_watch(TEAM, WATCHER, TARGET, until)
    hub.notifier.watch_added(TARGET)


def test_the_dm_comes_once_the_target_has_stayed_free(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {WATCHER: "101", TARGET: EXT}, free_debounce=20) as hub:
            await hub.phone(EXT, CONNECTED)
            await watch(hub)
            await hub.until(hub.now() + 14 * 60)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 19)
            assert hub.slack.dms == []  # not yet: they may be dialling again
            await hub.until(hub.now() + 2)
            assert hub.slack.dms == [
                (WATCHER, f"✅ <@{TARGET}> is free now — they were on the phone for 14 min.")
            ]
            await hub.phone(EXT, CONNECTED)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 60)
            assert len(hub.slack.dms) == 1  # a watch fires once

    virtual(body)


def test_back_to_back_calls_inside_the_debounce_do_not_fire(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {WATCHER: "101", TARGET: EXT}, free_debounce=20) as hub:
            await hub.phone(EXT, CONNECTED)
            await watch(hub)
            for _ in range(3):
                await hub.until(hub.now() + 60)
                await hub.phone(EXT, ENDED)
                await hub.until(hub.now() + 5)
                await hub.phone(EXT, CONNECTED)
            await hub.until(hub.now() + 60)
            assert hub.slack.dms == []
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 21)
            assert len(hub.slack.dms) == 1
            assert "on the phone for 1 min" in hub.slack.dms[0][1]  # since the last free moment

    virtual(body)


def test_a_target_unlinked_while_free_is_not_announced(tmp_path: Path) -> None:
    async def body() -> None:
        async with running_hub(tmp_path, {WATCHER: "101", TARGET: EXT}, free_debounce=20) as hub:
            await hub.phone(EXT, CONNECTED)
            await watch(hub)
            await hub.phone(EXT, ENDED)
            await hub.until(hub.now() + 5)
            await hub.store.unlink(TEAM, TARGET)
            await hub.coordinator.reload_links()
            await hub.until(hub.now() + 60)
            assert hub.slack.dms == []

    virtual(body)
