"""The availability API under /api/v1: keys and scopes, people, the gate, against both sims."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.api.keys import ApiKeys, Scope
from bot.app import Bot
from bot.cli import run_cli
from bot.presence import Availability
from bot.sim.company import Person
from tests.api_contract import check_response
from tests.helpers import wait_until
from tests.integration.bot_harness import Sims, running_bot, simulators


class Api:
    """A caller of the bot's API, checking every answer against the OpenAPI document."""

    def __init__(self, bot: Bot, session: aiohttp.ClientSession) -> None:
        self._base = f"http://127.0.0.1:{bot.http_port}/api/v1"
        self._session = session

    async def get(
        self, path: str, key: str | None, **params: str
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        async with self._session.get(self._base + path, headers=headers, params=params) as reply:
            body = await reply.json()
            check_response("GET", path, reply.status, body, reply.headers)
            return reply.status, body, dict(reply.headers)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Bot, Sims, Api]]:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", API_REQUESTS_PER_MINUTE="1000") as bot,
        aiohttp.ClientSession() as session,
    ):
        yield bot, sims, Api(bot, session)


async def new_key(bot: Bot, *scopes: Scope) -> str:
    _, key = await ApiKeys(bot.store).create("tests", [s.value for s in scopes])
    return key


def ref(person: Person) -> str:
    assert person.slack_id is not None
    return person.slack_id


async def test_every_endpoint_refuses_missing_wrong_revoked_and_unscoped_keys(
    running: tuple[Bot, Sims, Api],
) -> None:
    bot, sims, api = running
    person = sims.people()[0]
    reader = await new_key(bot, Scope.AVAILABILITY_READ)
    writer_only = await new_key(bot, Scope.WEBHOOKS_WRITE)
    revoked_record, revoked = await ApiKeys(bot.store).create("old", ["availability:read"])
    await ApiKeys(bot.store).revoke(revoked_record.id)
    for path in (f"/people/{ref(person)}", "/people", "/openapi.json"):
        for key, status, code in (
            (None, 401, "unauthorized"),
            ("rcs_" + "x" * 43, 401, "unauthorized"),
            ("not a key at all", 401, "unauthorized"),
            (revoked, 401, "unauthorized"),
            (writer_only, 403, "forbidden"),
        ):
            got, body, headers = await api.get(path, key)
            assert (got, body["error"]) == (status, code), (path, key)
            assert "WWW-Authenticate" in headers
        assert (await api.get(path, reader))[0] == 200
    status, body, _ = await api.get("/nowhere", reader)
    assert (status, body["error"]) == (404, "not_found")


async def test_a_key_over_its_budget_is_told_when_to_retry(tmp_path: Path) -> None:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", API_REQUESTS_PER_MINUTE="3") as bot,
        aiohttp.ClientSession() as session,
    ):
        api = Api(bot, session)
        key = await new_key(bot, Scope.AVAILABILITY_READ)
        statuses = [(await api.get("/people", key))[0] for _ in range(3)]
        assert statuses == [200, 200, 200]
        status, body, headers = await api.get("/people", key)
        assert (status, body["error"]) == (429, "rate_limited")
        assert int(headers["Retry-After"]) >= 1
        other = await new_key(bot, Scope.AVAILABILITY_READ)
        assert (await api.get("/people", other))[0] == 200  # each key has its own budget


async def test_a_person_is_found_by_every_kind_of_reference_with_their_availability(
    running: tuple[Bot, Sims, Api],
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.AVAILABILITY_READ)
    person = sims.people()[0]
    sims.call(person, "connected")
    await wait_until(lambda: bot.availability(ref(person)) is Availability.ON_CALL)
    for reference in (
        ref(person),
        person.email,
        person.email.upper(),
        str(person.extension_id),
        str(person.extension_number),
    ):
        status, body, _ = await api.get(f"/people/{reference}", key)
        assert status == 200, reference
        assert body["slack_user_id"] == ref(person)
        assert (body["availability"], body["reachable"]) == ("on_call", False)
        assert body["on_call_since"] is not None
        assert body["extension_number"] == person.extension_number
    for nobody in ("U99999999", "nobody@example.com", "999999", "<script>"):
        status, body, _ = await api.get(f"/people/{nobody}", key)
        assert (status, body["error"]) == (404, "not_found"), nobody


async def test_hidden_presence_and_sharing_off_say_hidden_and_nothing_more(
    running: tuple[Bot, Sims, Api],
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.AVAILABILITY_READ)
    private, sharer = sims.people()[1], sims.people()[2]
    assert private.extension_id is not None
    sims.rc.set_presence(private.extension_id, allowSeeMyPresence=False)
    await wait_until(lambda: bot.availability(ref(private)) is Availability.HIDDEN)
    sims.call(sharer, "connected")
    await wait_until(lambda: bot.availability(ref(sharer)) is Availability.ON_CALL)
    outcome = await sims.slack.send_command(
        ref(sharer), "/rcstatus", "settings share off", wait=5.0, expect_responses=1
    )
    assert "see you as hidden" in json.dumps(outcome["responses"][-1])
    for person in (private, sharer):
        status, body, _ = await api.get(f"/people/{ref(person)}", key)
        assert status == 200
        assert body["availability"] == "hidden"
        assert (body["since"], body["on_call_since"], body["reachable"]) == (None, None, False)


async def test_everyone_pages_by_cursor_and_filters_by_availability(
    running: tuple[Bot, Sims, Api],
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.AVAILABILITY_READ)
    busy = sims.people()[:3]
    for person in busy:
        sims.call(person, "connected")
    await wait_until(lambda: all(bot.availability(ref(p)) is Availability.ON_CALL for p in busy))
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        status, page, _ = await api.get("/people", key, **params)
        assert status == 200
        assert len(page["people"]) <= 4
        seen += [p["slack_user_id"] for p in page["people"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(set(seen))
    assert {p.slack_id for p in sims.company.slack_users} <= set(seen)
    status, on_call, _ = await api.get("/people", key, availability="on_call")
    assert {p["slack_user_id"] for p in on_call["people"]} >= {ref(p) for p in busy}
    assert {p["availability"] for p in on_call["people"]} == {"on_call"}
    for bad in ({"limit": "0"}, {"limit": "x"}, {"cursor": "bogus"}, {"availability": "asleep"}):
        status, body, _ = await api.get("/people", key, **bad)
        assert (status, body["error"]) == (400, "invalid_request"), bad


async def test_the_gate_holds_until_the_person_is_free_or_the_timeout_passes(
    running: tuple[Bot, Sims, Api],
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.AVAILABILITY_READ)
    person, other = sims.people()[3], sims.people()[4]
    sims.call(person, "connected")
    sims.call(other, "connected")
    await wait_until(lambda: bot.availability(ref(person)) is Availability.ON_CALL)
    await wait_until(lambda: bot.availability(ref(other)) is Availability.ON_CALL)

    held = asyncio.create_task(
        api.get(f"/people/{ref(person)}", key, wait="available", timeout="30")
    )
    await wait_until(lambda: bot.stats().gate_waiting == 1, message="the request is held")
    assert not held.done()
    sims.call(person, "ended")
    status, body, _ = await held
    assert (status, body["availability"], body["reachable"]) == (200, "available", True)

    status, body, _ = await api.get(f"/people/{ref(other)}", key, wait="available", timeout="0.3")
    assert (status, body["availability"]) == (200, "on_call")  # the timeout answers the truth
    free = sims.people()[5]
    status, body, _ = await api.get(f"/people/{ref(free)}", key, wait="available", timeout="60")
    assert body["reachable"] is True  # already free: answered at once
    for bad in ({"wait": "busy"}, {"wait": "available", "timeout": "61"}, {"timeout": "nan"}):
        params = {"wait": "available", **bad}
        status, body, _ = await api.get(f"/people/{ref(other)}", key, **params)
        assert (status, body["error"]) == (400, "invalid_request"), bad


def test_keys_are_made_listed_and_revoked_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    # An empty settings file: DATABASE_URL comes from the environment, as on a platform.
    (tmp_path / "keys.env").write_text("", encoding="utf-8")
    env_file = str(tmp_path / "keys.env")
    out = io.StringIO()
    argv = ["api-key", "--env-file", env_file, "create", "--name", "router"]
    assert run_cli([*argv, "--scope", "availability:read", "--json"], out) == 0
    made = json.loads(out.getvalue())
    assert made["scopes"] == ["availability:read"]
    assert made["key"].startswith("rcs_")
    listed = io.StringIO()
    assert run_cli(["api-key", "--env-file", env_file, "list"], listed) == 0
    assert made["id"] in listed.getvalue()
    assert made["key"] not in listed.getvalue()
    revoked = io.StringIO()
    assert run_cli(["api-key", "--env-file", env_file, "revoke", made["id"]], revoked) == 0
    assert "stops working at once" in revoked.getvalue()
    assert run_cli(["api-key", "--env-file", env_file, "revoke", "key_nope"], io.StringIO()) == 2


async def test_each_visible_change_is_recorded_once_with_what_it_was_before(
    running: tuple[Bot, Sims, Api],
) -> None:
    bot, sims, _ = running
    person, private = sims.people()[6], sims.people()[7]
    await sims.slack.send_command(
        ref(private), "/rcstatus", "settings share off", wait=5.0, expect_responses=1
    )
    for someone in (person, private):
        sims.call(someone, "connected")
    await wait_until(lambda: bot.availability(ref(private)) is Availability.ON_CALL)
    for someone in (person, private):
        sims.call(someone, "ended")
    await wait_until(lambda: bot.availability(ref(person)) is Availability.AVAILABLE)
    await wait_until(lambda: bot.availability(ref(private)) is Availability.AVAILABLE)

    async def recorded() -> list[tuple[str, str, str]]:
        events = await bot.store.events_after(bot.team_id, 0, 100)
        return [(e.user_id, e.data["previous"], e.data["availability"]) for e in events]

    async def ended_is_recorded() -> bool:
        return (ref(person), "on_call", "available") in await recorded()

    await wait_until(ended_is_recorded, message="the end of the call recorded")
    mine = [r for r in await recorded() if r[0] == ref(person)]
    assert mine[-2:] == [
        (ref(person), "available", "on_call"),
        (ref(person), "on_call", "available"),
    ]
    assert [r for r in await recorded() if r[0] == ref(private)] == []  # hidden stays hidden
