"""One attempt's safety (addresses, redirects, timeouts); a receiver dead for a whole schedule."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from bot.sim.slack import SlackSimulator
from bot.slack.clients import bot_client
from bot.slack.messages import DirectMessages
from bot.slack.outbox import DmOutbox
from bot.slack.people import SlackPeople
from bot.store import Store
from bot.store.webhooks import WebhookEndpoint
from bot.webhooks.dispatcher import WebhookDispatcher
from bot.webhooks.retry import RetryPolicy
from bot.webhooks.sender import WebhookSender, new_secret
from tests.helpers import wait_until
from tests.integration.bot_harness import free_port
from tests.integration.webhook_receiver import Receiver, always, hanging
from tests.sim.slack_helpers import running_sim

BODY = '{"type":"availability.changed"}'


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


class Names(AbstractResolver):
    """A DNS that says what the test wants, as a rebinding attacker's would."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {
                "hostname": host,
                "host": self.address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        return None


async def test_internal_addresses_are_refused_at_the_moment_of_sending(
    receiver: Receiver,
) -> None:
    strict = WebhookSender(allow_private=False)
    rebound = WebhookSender(allow_private=False, resolver=lambda: Names("127.0.0.1"))
    trusting = WebhookSender(allow_private=True, resolver=lambda: Names("127.0.0.1"))
    secret = new_secret()
    try:
        for sender, url in (
            (strict, f"https://localhost:{receiver.port}/a"),
            (strict, f"https://127.0.0.1:{receiver.port}/a"),
            (strict, receiver.url("/a")),  # http
            (rebound, f"https://hooks.example:{receiver.port}/a"),
        ):
            result = await sender.send(url, secret, "evt_1", BODY)
            assert (result.ok, result.status, result.error) == (False, None, "blocked address")
        assert receiver.received == []
        # The connection goes to the address the resolver checked, whatever the name.
        result = await trusting.send(
            f"http://hooks.example:{receiver.port}/b", secret, "evt_2", BODY
        )
        assert (result.ok, result.status) == (True, 200)
        [got] = receiver.received
        assert (got.path, got.webhook_id, got.raw) == ("/b", "evt_2", BODY.encode())
    finally:
        for sender in (strict, rebound, trusting):
            await sender.close()


async def test_redirects_are_not_followed_answers_are_capped_and_slow_ones_time_out(
    receiver: Receiver,
) -> None:
    sender = WebhookSender(allow_private=True, timeout=0.5)
    secret = new_secret()
    receiver.on("/moved", always(307))
    receiver.extra["/moved"] = ({"Location": receiver.url("/target")}, b"")
    receiver.on("/busy", always(429))
    receiver.extra["/busy"] = ({"Retry-After": "7"}, b"slow down")
    receiver.extra["/big"] = ({}, b"x" * 2_000_000)
    receiver.on("/hang", hanging())
    try:
        moved = await sender.send(receiver.url("/moved"), secret, "evt_1", BODY)
        assert (moved.ok, moved.status, moved.error) == (False, 307, "answered 307")
        assert receiver.at("/target") == []
        busy = await sender.send(receiver.url("/busy"), secret, "evt_2", BODY)
        assert (busy.status, busy.retry_after) == (429, 7.0)
        big = await sender.send(receiver.url("/big"), secret, "evt_3", BODY)
        assert (big.ok, big.status) == (True, 200)
        slow = await sender.send(receiver.url("/hang"), secret, "evt_4", BODY)
        assert (slow.ok, slow.status, slow.error) == (False, None, "timed out")
        closed = await sender.send(f"http://127.0.0.1:{free_port()}/", secret, "evt_5", BODY)
        assert (closed.ok, closed.error) == (False, "connection failed")
    finally:
        await sender.close()


async def test_a_receiver_failing_a_whole_schedule_is_disabled_and_the_admins_told_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    # The 27-hour schedule in about half a second.
    retry = RetryPolicy(scale=lambda seconds: seconds / 200_000)
    async with _failing_lane(
        tmp_path, receiver, "wh_00000000000000dd", path="/down", retry=retry
    ) as lane:
        sim, store, hook = lane.sim, lane.store, lane.hook
        dispatcher, outbox = lane.dispatcher, lane.outbox
        await lane.people.refresh()
        assert lane.people.admins()
        await store.append_event(sim.team_id, hook.created_at, "U1", {"availability": "on_call"})
        tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(outbox.run())]
        dispatcher.kick()
        try:

            async def disabled() -> bool:
                found = await store.webhook(sim.team_id, hook.id)
                return found is not None and not found.enabled

            await wait_until(disabled, message="the endpoint disabled")
            admins = lane.people.admins()
            await wait_until(
                lambda: all(sim.messages(user=a, kind="dm") for a in admins),
                message="every admin told",
            )
        finally:
            await dispatcher.stop()
            await outbox.stop()
            await asyncio.gather(*tasks)
    found = await _reopen(tmp_path, sim.team_id, hook.id)
    assert found == "every attempt failed for a whole retry schedule"
    # Eight attempts, all signed, all with the event's one id; none after the last.
    assert [(r.webhook_id, r.verified) for r in receiver.at("/down")] == [("evt_1", True)] * 8
    for admin in admins:
        [dm] = sim.messages(user=admin, kind="dm")
        assert "wh_00000000000000dd" in dm["text"]
        assert "door sign" in dm["text"]
        assert "/down" not in dm["text"]  # the path may hold a receiver's token
    assert dispatcher.stats().disabled == 1


async def test_a_lane_rests_after_failures_in_a_row_and_delivers_all_once_the_receiver_is_back(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A dead receiver is not tried once per person waiting for it: after five failures in a row
    its lane rests for the schedule's first wait, then probes one attempt at a time."""
    async with _failing_lane(tmp_path, receiver, "wh_00000000000000ee") as lane:
        store, dispatcher, hook, answer = lane.store, lane.dispatcher, lane.hook, lane.answer
        for n in range(40):
            await store.append_event(
                hook.team_id, hook.created_at, f"U{n:03d}", {"availability": "on_call"}
            )
        task = asyncio.create_task(dispatcher.run())
        dispatcher.kick()
        try:
            await wait_until(
                lambda: len(receiver.at("/flaky")) >= 9, timeout=15, message="a probe after a rest"
            )
            failed = receiver.at("/flaky")
            # The first batch (8 in flight) failed, then nothing for a whole first wait.
            assert failed[8].at - failed[7].at >= lane.retry.first_wait * 0.9
            answer["status"] = 200
            await wait_until(
                lambda: (
                    {r.webhook_id for r in receiver.at("/flaky") if r.verified}
                    >= {f"evt_{n}" for n in range(1, 41)}
                ),
                timeout=30,
                message="all 40 delivered once the receiver is back",
            )
        finally:
            await dispatcher.stop()
            await task
    # Each person was tried at most twice: never once per person while the receiver was dead.
    attempts = [r.webhook_id for r in receiver.at("/flaky")]
    assert len(attempts) < 40 + 10
    assert max(attempts.count(i) for i in set(attempts)) <= 2


async def test_changes_wait_in_the_log_while_a_lane_rests_and_arrive_in_order_after(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A failing receiver's new changes are not written as deliveries while its lane rests
    (the healthy receivers' rounds would pay for them); once it answers they all arrive, each
    person's in order."""
    async with _failing_lane(tmp_path, receiver, "wh_00000000000000ff") as lane:
        store, dispatcher, hook, answer = lane.store, lane.dispatcher, lane.hook, lane.answer
        owner: dict[int, str] = {}

        async def change(user: str, availability: str) -> None:
            event_id = await store.append_event(
                hook.team_id, hook.created_at, user, {"availability": availability}
            )
            owner[event_id] = user

        for n in range(10):
            await change(f"U{n:03d}", "on_call")
        task = asyncio.create_task(dispatcher.run())
        dispatcher.kick()
        try:
            await wait_until(
                lambda: len(receiver.at("/flaky")) >= 9, timeout=15, message="a probe after a rest"
            )
            for n in range(10):
                await change(f"U{n:03d}", "available")
                await change(f"U{n + 10:03d}", "on_call")
            dispatcher.kick()
            # A probe after the kick: the round the kick started has run by then.
            await wait_until(
                lambda: len(receiver.at("/flaky")) >= 10, timeout=15, message="another probe"
            )
            listed = await store.webhook_deliveries(hook.id, before_id=None, limit=100)
            assert sorted(d.event_id for d in listed) == list(range(1, 11))
            answer["status"] = 200
            await wait_until(
                lambda: {r.event_id for r in receiver.at("/flaky") if r.verified} >= set(owner),
                timeout=30,
                message="all 30 changes delivered once the receiver is back",
            )
        finally:
            await dispatcher.stop()
            await task
    arrived: dict[str, list[int]] = {}
    for request in receiver.at("/flaky"):
        mine = arrived.setdefault(owner[request.event_id], [])
        if request.event_id not in mine:
            mine.append(request.event_id)
    assert all(ids == sorted(ids) for ids in arrived.values())
    assert sum(len(ids) for ids in arrived.values()) == 30


@dataclass(frozen=True)
class _FailingLane:
    """A dispatcher, not yet running, with one endpoint at a path of the receiver that answers
    500 until the test says otherwise, and the Slack side that hears about it."""

    sim: SlackSimulator
    people: SlackPeople
    outbox: DmOutbox
    store: Store
    dispatcher: WebhookDispatcher
    hook: WebhookEndpoint
    retry: RetryPolicy
    answer: dict[str, int]
    """What the path answers: {"status": 500} until the test changes it."""


@asynccontextmanager
async def _failing_lane(
    tmp_path: Path,
    receiver: Receiver,
    endpoint_id: str,
    *,
    path: str = "/flaky",
    retry: RetryPolicy | None = None,
) -> AsyncIterator[_FailingLane]:
    answer = {"status": 500}
    receiver.on(path, lambda _count: answer["status"])
    secret = receiver.secrets[path] = new_secret()
    if retry is None:
        retry = RetryPolicy(scale=lambda seconds: seconds / 5)  # first wait 1 s, then 60 s...
    async with (
        running_sim() as sim,
        aiohttp.ClientSession() as http,
        Store(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}") as store,
    ):
        client = bot_client(sim.url + "/api/", http, token=sim.bot_token)
        people = SlackPeople(client, sim.team_id)
        outbox = DmOutbox(store=store, team_id=sim.team_id, sender=DirectMessages(client))
        dispatcher = _dispatcher(store, sim.team_id, retry, outbox, people)
        hook = await _hook(store, sim.team_id, endpoint_id, receiver.url(path), secret)
        yield _FailingLane(sim, people, outbox, store, dispatcher, hook, retry, answer)


def _dispatcher(
    store: Store, team_id: str, retry: RetryPolicy, outbox: DmOutbox, people: SlackPeople
) -> WebhookDispatcher:
    return WebhookDispatcher(
        store=store,
        team_id=team_id,
        sender=WebhookSender(allow_private=True),
        retry=retry,
        messenger=outbox,
        admins=people.admins,
    )


async def _hook(
    store: Store, team_id: str, endpoint_id: str, url: str, secret: str
) -> WebhookEndpoint:
    hook = await store.add_webhook(
        endpoint_id=endpoint_id,
        team_id=team_id,
        url=url,
        secret=secret,
        people=None,
        availability=None,
        description="door sign",
        created_by="key_1",
        max_endpoints=50,
    )
    assert hook is not None
    return hook


async def _reopen(tmp_path: Path, team_id: str, endpoint_id: str) -> str | None:
    async with Store(f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}") as store:
        found = await store.webhook(team_id, endpoint_id)
        return found.disabled_reason if found is not None else None
