"""Home boards: republished once per queued viewer, never faster than the budget allows."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import UTC, datetime

import pytest

from bot.presence import Availability
from bot.roster import PersonChange
from bot.slack.boards import BoardRefresher
from tests.helpers import wait_until


class Boards:
    """Who starred whom, and when each viewer's board was published (loop seconds)."""

    def __init__(self, starred: dict[str, set[str]]) -> None:
        self.starred = starred
        self.broken: set[str] = set()
        self.published: list[tuple[float, str]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def publish(self, viewer: str) -> Collection[str]:
        await self.release.wait()
        if viewer in self.broken:
            raise RuntimeError("views.publish failed")
        self.published.append((asyncio.get_running_loop().time(), viewer))
        return self.starred.get(viewer, set())


def change(user_id: str, new: Availability) -> PersonChange:
    return PersonChange(user_id, "101", None, new, datetime.now(UTC), None)


async def opened(refresher: BoardRefresher, boards: Boards) -> None:
    """Every viewer opens their Home once: that is how the refresher learns what each shows."""
    for viewer in boards.starred:
        await refresher.show(viewer)
    boards.published.clear()


async def test_many_changes_while_queued_cost_one_publish_per_viewer() -> None:
    boards = Boards({"V1": {"alice", "bob"}, "V2": {"alice"}, "V3": {"carol"}})
    refresher = BoardRefresher(home=boards)
    await opened(refresher, boards)
    boards.release.clear()  # Slack is slow: changes pile up while the first publish is out
    runner = asyncio.create_task(refresher.run())
    try:
        await refresher.on_person_change(change("alice", Availability.ON_CALL))
        await wait_until(lambda: refresher.queued() == 1, message="V1 taken, V2 queued")
        for user in ("alice", "bob", "alice", "bob"):
            await refresher.on_person_change(change(user, Availability.AVAILABLE))
        assert refresher.queued() == 2  # V2 and V1 again, once each
        boards.release.set()
        await wait_until(lambda: refresher.published == 3, message="three publishes")
        assert sorted(viewer for _at, viewer in boards.published) == ["V1", "V1", "V2"]
        assert refresher.queued() == 0
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_an_unstar_takes_the_viewer_off_that_colleagues_index() -> None:
    boards = Boards({"V1": {"alice", "bob"}})
    refresher = BoardRefresher(home=boards)
    await opened(refresher, boards)
    assert refresher.viewers_of("bob") == {"V1"}
    boards.starred["V1"] = {"alice"}
    await refresher.show("V1")  # they unstarred bob on their board
    assert refresher.viewers_of("bob") == frozenset()
    refresher.changed("bob")
    assert refresher.queued() == 0


async def test_publishes_keep_to_the_budget_and_a_failure_does_not_stop_the_rest() -> None:
    viewers = {f"V{n}": {"alice"} for n in range(8)}
    boards = Boards(viewers)
    window = 0.2
    refresher = BoardRefresher(home=boards, publishes_per_window=3, window=window)
    await opened(refresher, boards)
    boards.broken = {"V3"}
    runner = asyncio.create_task(refresher.run())
    try:
        refresher.changed("alice")
        await wait_until(lambda: refresher.published == 8, message="every board republished")
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert {viewer for _at, viewer in boards.published} == {f"V{n}" for n in range(8)} - {"V3"}
    times = [at for at, _viewer in boards.published]
    for index in range(len(times) - 3):
        # Any four consecutive publishes span at least one window: never 4 in a window.
        assert times[index + 3] - times[index] >= window - 1e-3


def test_a_budget_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BoardRefresher(home=Boards({}), publishes_per_window=0)
