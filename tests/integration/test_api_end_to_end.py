"""Other systems' view end to end: `rcstatus-bot run` and `api-key create` as an operator runs
them, a call driven through the RingCentral simulator's control API, and what each interface
(the gate, the event stream and a webhook receiver) tells a caller about it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bot.sim.company import Person
from tests.api_contract import check_event, check_response
from tests.helpers import ControlClient, wait_until
from tests.integration.bot_harness import (
    BotProcess,
    Sims,
    cli_env,
    free_port,
    rcstatus_bot,
    simulators,
    write_env,
)
from tests.integration.webhook_receiver import Receiver
from tests.sse import SseReader


@dataclass
class EndToEnd:
    """The bot in its own process, a key made with the CLI, and the simulators' control API."""

    sims: Sims
    bot: BotProcess
    env_file: Path
    key: str
    session: aiohttp.ClientSession
    ringcentral: ControlClient

    @property
    def api_base(self) -> str:
        return self.sims.app_url + "/api/v1"

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        """One API call with the key, its answer checked against the OpenAPI document."""
        headers = {"Authorization": f"Bearer {self.key}"}
        url = self.api_base + path
        async with self.session.get(url, headers=headers, params=params) as reply:
            body = await reply.json()
            check_response("GET", path, reply.status, body, reply.headers)
            return reply.status, body

    async def availability(self, person: Person) -> str:
        status, body = await self.get(f"/people/{person.slack_id}")
        assert status == 200, body
        return str(body["availability"])

    async def call(self, person: Person, state: str) -> None:
        """Drive the person's phone as a test author would with curl."""
        await self.ringcentral.post(f"extensions/{person.extension_id}/call", {"state": state})


async def create_key(env_file: Path, *scopes: str) -> dict[str, Any]:
    """`rcstatus-bot api-key create --json`, run as the README spells it."""
    scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
    process = await asyncio.create_subprocess_exec(
        *rcstatus_bot(), "api-key", "--env-file", str(env_file),
        "create", "--name", "end-to-end", *scope_args, "--json",
        cwd=env_file.parent, env=cli_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    made: dict[str, Any] = json.loads(out)
    assert made["scopes"] == list(scopes)
    return made


@contextlib.asynccontextmanager
async def end_to_end(tmp_path: Path, **settings: str) -> AsyncIterator[EndToEnd]:
    async with simulators() as sims, aiohttp.ClientSession() as session:
        env_file = write_env(sims, tmp_path, **settings)
        bot = BotProcess(sims, env_file)
        await bot.start()
        try:
            made = await create_key(env_file, "availability:read", "webhooks:write")
            ringcentral = ControlClient(sims.rc.url, session)
            yield EndToEnd(sims, bot, env_file, made["key"], session, ringcentral)
        finally:
            assert await bot.terminate() == 0, bot.log.read_text()[-3000:]


class HeldGate:
    """A gate request (`?wait=available`) held open while its person is busy."""

    def __init__(self, e2e: EndToEnd, person: Person) -> None:
        self._e2e = e2e
        self._path = f"/people/{person.slack_id}"
        self._sent = asyncio.Event()
        self._answer: asyncio.Task[tuple[int, Any]] | None = None

    async def open(self) -> None:
        """Send it, and make sure the bot has read it while the person is still busy."""
        self._answer = asyncio.create_task(self._ask())
        await asyncio.wait_for(self._sent.wait(), 10)
        # Ours went out on a connection the bot had already accepted, before this one: a bot
        # that answers this one has read ours too, so if ours is not answered, it is held.
        status, body = await self._e2e.get(self._path)
        assert (status, body["availability"]) == (200, "on_call")
        assert not self._answer.done(), self._answer.result()

    async def _ask(self) -> tuple[int, Any]:
        trace = aiohttp.TraceConfig()

        async def sent(
            _: aiohttp.ClientSession, __: object, params: aiohttp.TraceRequestHeadersSentParams
        ) -> None:
            if "wait" in params.url.query:
                self._sent.set()

        trace.on_request_headers_sent.append(sent)
        headers = {"Authorization": f"Bearer {self._e2e.key}"}
        url = self._e2e.api_base + self._path
        connector = aiohttp.TCPConnector(limit=1)  # one connection, reused for both requests
        async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
            async with session.get(url, headers=headers) as warm:
                assert (await warm.json())["availability"] == "on_call"
            params = {"wait": "available", "timeout": "60"}
            async with session.get(url, headers=headers, params=params) as reply:
                body = await reply.json()
                check_response("GET", self._path, reply.status, body, reply.headers)
                return reply.status, body

    async def answer(self) -> tuple[int, Any]:
        assert self._answer is not None
        return await asyncio.wait_for(self._answer, 30)


async def test_a_call_through_the_control_api_is_told_by_the_gate_when_it_ends(
    tmp_path: Path,
) -> None:
    async with end_to_end(tmp_path) as e2e:
        person = e2e.sims.people()[0]
        await e2e.call(person, "connected")

        async def on_the_call() -> bool:
            return await e2e.availability(person) == "on_call"

        await wait_until(on_the_call, timeout=20, message="the API to say on_call")
        gate = HeldGate(e2e, person)
        await gate.open()
        receiver = Receiver(free_port())
        await receiver.start()
        headers = {"Authorization": f"Bearer {e2e.key}"}
        try:
            hook = {"url": receiver.url("/router"), "people": [person.email]}
            async with e2e.session.post(
                e2e.api_base + "/webhooks", json=hook, headers=headers
            ) as reply:
                made = await reply.json()
                check_response("POST", "/webhooks", reply.status, made, reply.headers)
                assert reply.status == 201, made
            receiver.secrets["/router"] = made["secret"]
            async with e2e.session.get(
                e2e.api_base + "/events", headers=headers, timeout=aiohttp.ClientTimeout(total=60)
            ) as stream:
                assert stream.status == 200
                events = SseReader(stream)
                # The opening comment: the stream is subscribed to live changes from here.
                await events.until_comment("rcstatus availability stream", timeout=20)

                await e2e.call(person, "ended")

                status, body = await gate.answer()
                assert (status, body["availability"], body["reachable"]) == (200, "available", True)
                assert body["slack_user_id"] == person.slack_id
                assert body["on_call_since"] is None

                change = await events.next_event(timeout=20)
                while change.json()["data"]["slack_user_id"] != person.slack_id:
                    change = await events.next_event(timeout=20)
                check_event("/events", change.event, change.data, change.last_event_id)
                told = change.json()["data"]
                assert (told["previous"], told["availability"]) == ("on_call", "available")
            await wait_until(lambda: receiver.at("/router"), timeout=20, message="the webhook")
            delivered = receiver.at("/router")[0]
            assert delivered.verified, delivered.headers
            assert delivered.webhook_id == f"evt_{change.last_event_id}"
            assert delivered.body["type"] == "availability.changed"
            assert delivered.body["data"] == told
        finally:
            await receiver.stop()
