"""The live event stream, GET /api/v1/events, against both simulators with the bot as run."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.api.keys import ApiKeys, Scope
from bot.app import Bot
from bot.presence import Availability
from bot.sim.company import Person
from tests.api_contract import check_event, check_response
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, running_bot, simulators
from tests.sse import SseEvent, SseReader

STREAM_SETTINGS = {
    "API_STREAM_HEARTBEAT_SECONDS": "0.2",
    "API_MAX_STREAMS": "3",
    "API_MAX_STREAMS_PER_KEY": "2",
    "API_REQUESTS_PER_MINUTE": "1000",
}
NO_READ_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_read=None)


class Stream:
    """A client of the bot's event stream that checks every answer against the OpenAPI document."""

    def __init__(self, bot: Bot, session: aiohttp.ClientSession) -> None:
        self.url = f"http://127.0.0.1:{bot.http_port}/api/v1/events"
        self._session = session

    @contextlib.asynccontextmanager
    async def open(
        self, key: str, last_id: int | str | None = None, **params: str
    ) -> AsyncIterator[SseReader]:
        headers = {"Authorization": f"Bearer {key}"}
        if last_id is not None:
            headers["Last-Event-ID"] = str(last_id)
        async with self._session.get(
            self.url, headers=headers, params=params, timeout=NO_READ_TIMEOUT
        ) as reply:
            assert reply.status == 200, await reply.text()
            check_response("GET", "/events", 200, None, reply.headers)
            assert reply.headers["Content-Type"].startswith("text/event-stream")
            assert reply.headers["Cache-Control"] == "no-store"
            assert reply.headers["X-Accel-Buffering"] == "no"
            reader = SseReader(reply)
            await reader.until_comment("rcstatus availability stream")
            assert reader.retry == 3000  # how long a dropped EventSource waits to reconnect
            yield reader

    async def refused(
        self, key: str | None, headers: dict[str, str] | None = None, **params: str
    ) -> tuple[int, Any, dict[str, str]]:
        sent = dict(headers or {})
        if key is not None:
            sent["Authorization"] = f"Bearer {key}"
        async with self._session.get(self.url, headers=sent, params=params) as reply:
            assert reply.status != 200, "a stream opened that should have been refused"
            body = await reply.json()
            check_response("GET", "/events", reply.status, body, reply.headers)
            return reply.status, body, dict(reply.headers)


def change(event: SseEvent) -> tuple[str, str, str]:
    """Whose change it is, from what to what; checked against the contract on the way."""
    check_event("/events", event.event, event.data, event.last_event_id if event.had_id else None)
    body = event.json()
    assert event.event == body["type"] == "availability.changed"
    assert event.had_id
    data = body["data"]
    return data["slack_user_id"], data["previous"], data["availability"]


async def next_change_of(reader: SseReader, person: Person) -> tuple[SseEvent, tuple[str, ...]]:
    """The next change of `person`, skipping anyone else's."""
    while True:
        event = await reader.next_event()
        who = change(event)
        if who[0] == ref(person):
            return event, who[1:]


async def new_key(bot: Bot, *scopes: Scope) -> str:
    _, key = await ApiKeys(bot.store).create("tests", [s.value for s in scopes])
    return key


def ref(person: Person) -> str:
    assert person.slack_id is not None
    return person.slack_id


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Bot, Sims, Stream]]:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", **STREAM_SETTINGS) as bot,
        aiohttp.ClientSession() as session,
    ):
        yield bot, sims, Stream(bot, session)


async def test_a_call_arrives_as_two_events_and_an_idle_stream_gets_heartbeats(
    running: tuple[Bot, Sims, Stream],
) -> None:
    bot, sims, stream = running
    key = await new_key(bot, Scope.AVAILABILITY_READ)
    person = sims.people()[0]
    async with stream.open(key) as reader:
        assert bot.stats().streams_open == 1
        sims.call(person, "connected")
        started, started_change = await next_change_of(reader, person)
        assert started_change == ("available", "on_call")
        sims.call(person, "ended")
        ended, ended_change = await next_change_of(reader, person)
        assert ended_change == ("on_call", "available")
        assert int(ended.last_event_id) > int(started.last_event_id) > 0
        body = ended.json()
        assert body["data"]["reachable"] is True
        assert body["data"]["extension_number"] == person.extension_number
        reader.comments.clear()
        await reader.until_comment("keep-alive")
    await wait_until(lambda: bot.stats().streams_open == 0, message="the stream is let go")


async def test_a_client_that_reconnects_gets_exactly_what_it_missed_even_after_a_restart(
    tmp_path: Path,
) -> None:
    database = tmp_path / "bot.db"
    async with simulators() as sims, aiohttp.ClientSession() as session:
        first, second = sims.people()[0], sims.people()[1]
        async with running_bot(sims, database, **STREAM_SETTINGS) as bot:
            key = await new_key(bot, Scope.AVAILABILITY_READ)
            async with Stream(bot, session).open(key) as reader:
                sims.call(first, "connected")
                seen, _ = await next_change_of(reader, first)
            # Missed while nobody listens: the first call ends, a second one starts.
            sims.call(first, "ended")
            sims.call(second, "connected")
            await wait_until(lambda: bot.availability(ref(second)) is Availability.ON_CALL)
            await wait_until(lambda: bot.availability(ref(first)) is Availability.AVAILABLE)
            await bot.settle()
        async with (
            running_bot(sims, database, **STREAM_SETTINGS) as bot,
            Stream(bot, session).open(key, seen.last_event_id) as reader,
        ):
            missed = [await reader.next_event(), await reader.next_event()]
            assert [change(e) for e in missed] == [
                (ref(first), "on_call", "available"),
                (ref(second), "available", "on_call"),
            ]
            ids = [int(e.last_event_id) for e in missed]
            assert int(seen.last_event_id) < ids[0] < ids[1]
            sims.call(second, "ended")
            live = await reader.next_event()
            assert change(live) == (ref(second), "on_call", "available")  # nothing replayed twice
            assert int(live.last_event_id) > ids[1]
            assert "stream.gap" not in [e.event for e in missed]

            # A browser's EventSource cannot set headers: the query parameter resumes too,
            # and the header (the newest id, on a reconnect) wins over it.
            async with Stream(bot, session).open(key, last_event_id=str(ids[0])) as by_query:
                assert change(await by_query.next_event())[0] == ref(second)
            await wait_until(lambda: bot.stats().streams_open == 1, message="a slot let go")
            async with Stream(bot, session).open(
                key, live.last_event_id, last_event_id=str(ids[0])
            ) as both:
                sims.call(first, "connected")
                assert change(await both.next_event()) == (ref(first), "available", "on_call")


async def test_an_id_older_than_the_log_gets_a_gap_event_then_what_is_kept(
    running: tuple[Bot, Sims, Stream],
) -> None:
    bot, sims, stream = running
    key = await new_key(bot, Scope.AVAILABILITY_READ)
    person = sims.people()[2]
    for state in ("connected", "ended", "connected"):
        sims.call(person, state)
        wanted = Availability.ON_CALL if state == "connected" else Availability.AVAILABLE
        await wait_until(lambda wanted=wanted: bot.availability(ref(person)) is wanted)

    async def recorded() -> bool:
        return len(await bot.store.events_after(bot.team_id, 0, 10)) >= 3

    await wait_until(recorded, message="three changes recorded")
    kept = await bot.store.events_after(bot.team_id, 0, 1000)
    # Pruned: what a client held as its last id is older than anything kept.
    await bot.store.prune_events(kept[-1].at, keep_at_most=1_000_000)
    newest = (await bot.store.events_after(bot.team_id, 0, 1000))[0]
    async with stream.open(key, newest.id - 2) as reader:
        gap = await reader.next_event()
        check_event("/events", gap.event, gap.data, None)
        assert gap.event == "stream.gap"
        assert gap.json()["data"] == {"last_event_id": newest.id - 2, "oldest_event_id": newest.id}
        assert int((await reader.next_event()).last_event_id) == newest.id
    async with stream.open(key, newest.id - 1) as reader:  # the id before: nothing was missed
        replayed = await reader.next_event()
        assert (replayed.event, int(replayed.last_event_id)) == ("availability.changed", newest.id)
        sims.call(person, "ended")
        assert change(await reader.next_event()) == (ref(person), "on_call", "available")


async def test_streams_refuse_bad_keys_and_ids_and_are_bounded(
    running: tuple[Bot, Sims, Stream],
) -> None:
    bot, _, stream = running
    reader_key = await new_key(bot, Scope.AVAILABILITY_READ)
    writer_only = await new_key(bot, Scope.WEBHOOKS_WRITE)
    revoked_record, revoked = await ApiKeys(bot.store).create("old", ["availability:read"])
    await ApiKeys(bot.store).revoke(revoked_record.id)
    for key, status, code in (
        (None, 401, "unauthorized"),
        ("rcs_" + "x" * 43, 401, "unauthorized"),
        (revoked, 401, "unauthorized"),
        (writer_only, 403, "forbidden"),
    ):
        got, body, headers = await stream.refused(key)
        assert (got, body["error"]) == (status, code), key
        assert "WWW-Authenticate" in headers
    for bad in ("abc", "-1", "1.5", "1e3", "1" * 19, "٣"):
        status, body, _ = await stream.refused(reader_key, {"Last-Event-ID": bad})
        assert (status, body["error"]) == (400, "invalid_request"), bad
    for bad in ("abc", "-1", " 7", "1" * 19):
        status, body, _ = await stream.refused(reader_key, last_event_id=bad)
        assert (status, body["error"]) == (400, "invalid_request"), bad

    other_key = await new_key(bot, Scope.AVAILABILITY_READ)
    async with stream.open(reader_key), stream.open(reader_key):
        status, body, headers = await stream.refused(reader_key)
        assert (status, body["error"]) == (429, "too_many_streams")
        assert int(headers["Retry-After"]) >= 1
        async with stream.open(other_key):
            assert bot.stats().streams_open == 3
            status, body, headers = await stream.refused(other_key)
            assert (status, body["error"]) == (503, "busy")
            assert int(headers["Retry-After"]) >= 1
    await wait_until(lambda: bot.stats().streams_open == 0, message="every stream let go")
    async with stream.open(reader_key):  # the slots are free again
        pass


async def test_a_revoked_key_ends_its_open_stream(running: tuple[Bot, Sims, Stream]) -> None:
    bot, _, stream = running
    record, key = await ApiKeys(bot.store).create("revoke me", ["availability:read"])
    keeper = await new_key(bot, Scope.AVAILABILITY_READ)
    async with stream.open(key) as doomed, stream.open(keeper) as kept:
        await ApiKeys(bot.store).revoke(record.id)
        await doomed.until_end()
        assert "this API key was revoked" in doomed.comments
        kept.comments.clear()
        await kept.until_comment("keep-alive")  # other keys' streams go on
    status, body, _ = await stream.refused(key)
    assert (status, body["error"]) == (401, "unauthorized")


async def test_a_stream_spends_its_key_budget_once_and_stopping_the_bot_ends_it_at_once(
    tmp_path: Path,
) -> None:
    budget = {**STREAM_SETTINGS, "API_REQUESTS_PER_MINUTE": "3"}
    async with simulators() as sims, aiohttp.ClientSession() as session:
        settings = sims.settings(tmp_path / "bot.db", PORT=str(sims.port), **budget)
        bot = await Bot.create(settings)
        stopped = False
        try:
            await bot.start()
            key = await new_key(bot, Scope.AVAILABILITY_READ)
            stream = Stream(bot, session)
            people = f"http://127.0.0.1:{bot.http_port}/api/v1/people"
            auth = {"Authorization": f"Bearer {key}"}
            async with stream.open(key) as one, stream.open(key) as two:
                assert bot.stats().streams_open == 2
                for _ in range(3):  # heartbeats, each with a key check, cost nothing
                    one.comments.clear()
                    await one.until_comment("keep-alive")
                async with session.get(people, headers=auth) as reply:
                    assert reply.status == 200  # the third request of three
                async with session.get(people, headers=auth) as reply:
                    check_response(
                        "GET", "/people", reply.status, await reply.json(), reply.headers
                    )
                    assert reply.status == 429
                # aiohttp alone would wait a minute for open handlers before cancelling them.
                await asyncio.wait_for(bot.stop(), timeout=10)
                stopped = True
                await one.until_end(timeout=2)
                await two.until_end(timeout=2)
                assert bot.stats().streams_open == 0
        finally:
            if not stopped:
                await bot.stop()
