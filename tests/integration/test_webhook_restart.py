"""kill -9 of `rcstatus-bot run` with a thousand deliveries waiting: every one arrives, in order."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import aiohttp
import pytest

from bot.api.keys import ApiKeys, Scope
from bot.store import Store
from tests.helpers import ControlClient, wait_until
from tests.integration.bot_harness import free_port, simulators
from tests.integration.test_status_sync import BotProcess, write_env
from tests.integration.test_webhooks import Api, register
from tests.integration.webhook_receiver import Receiver

WANTED = 1000


@pytest.mark.slow
async def test_kill_9_with_a_thousand_deliveries_waiting_loses_none_and_keeps_order(
    tmp_path: Path,
) -> None:
    # 1200 times faster, the retries while the receiver is down, and those due after the
    # restart, come within seconds rather than hours (the persisted schedule is honoured).
    async with (
        simulators(users=40, scale=1200.0) as sims,
        aiohttp.ClientSession() as session,
    ):
        receiver = Receiver(free_port())  # down: nothing listens on its port yet
        bot = BotProcess(sims, write_env(sims, tmp_path, API_REQUESTS_PER_MINUTE="100000"))
        database = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
        await bot.start()
        try:
            async with Store(database) as store:
                _, key = await ApiKeys(store).create("router", [Scope.WEBHOOKS_WRITE.value])
                api = Api(sims.port, session)
                hook = await register(api, key, receiver, "/all")
                start = await store.latest_event_id(sims.slack.team_id)
                people = sims.people()
                control = ControlClient(sims.rc.url, session)

                async def recorded() -> int:
                    return await store.latest_event_id(sims.slack.team_id) - start

                # Calls started through the simulator's control API, as another process would.
                made = 0
                while made < WANTED:
                    for state in ("connected", "ended"):
                        for person in people:
                            await control.post(
                                f"extensions/{person.extension_id}/call", {"state": state}
                            )
                        made += len(people)
                        goal = made

                        async def caught_up(goal: int = goal) -> bool:
                            return await recorded() >= goal

                        await wait_until(caught_up, timeout=20, message=f"{goal} changes")

                async def all_waiting() -> bool:
                    # Queued as deliveries or, once the receiver kept failing, waiting in the
                    # log past the endpoint's cursor (fan-out passes a resting lane over).
                    endpoint = await store.webhook(sims.slack.team_id, hook)
                    assert endpoint is not None
                    in_log = await store.latest_event_id(sims.slack.team_id) - endpoint.event_cursor
                    return await store.unfinished_deliveries(hook) + in_log >= made

                await wait_until(all_waiting, timeout=20, message="every delivery waiting")
            await bot.kill()
            async with Store(database) as store:
                deliveries = await store.webhook_deliveries(hook, before_id=None, limit=10 * made)
                changes = await store.events_after(sims.slack.team_id, start, 10 * made)
            expected = {e.id for e in changes}
            assert {d.event_id for d in deliveries} <= expected
            assert len(expected) >= made >= WANTED

            await receiver.start()
            await bot.start()

            def delivered() -> bool:
                return {r.event_id for r in receiver.at("/all")} >= expected

            await wait_until(delivered, timeout=60, message="every delivery after the restart")
        finally:
            assert await bot.terminate() == 0
            await receiver.stop()

    received = receiver.at("/all")
    assert all(r.verified for r in received)  # every signature, checked independently
    # The restarted bot may record more changes (what it knew at the kill was a moment old);
    # those are delivered too, after the ones waiting for each person.
    assert {r.event_id for r in received} >= expected
    first_body: dict[int, bytes] = {}
    by_person: dict[str, list[int]] = defaultdict(list)
    for got in received:
        # A webhook-id seen twice is the same event sent again, never another event.
        assert first_body.setdefault(got.event_id, got.raw) == got.raw
        by_person[got.body["data"]["slack_user_id"]].append(got.event_id)
    assert len(by_person) == len(people)
    bodies = {r.event_id: r.body["data"] for r in received}
    for arrivals in by_person.values():
        assert arrivals == sorted(arrivals)  # in order per person
        chain = sorted(set(arrivals) & expected)
        for before, after in itertools.pairwise(chain):
            assert bodies[after]["previous"] == bodies[before]["availability"]  # none skipped
