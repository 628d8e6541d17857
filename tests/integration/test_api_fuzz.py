"""Schemathesis against the live bot: no server error, no answer off the OpenAPI document."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from logging import ERROR
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from bot.api.keys import ApiKeys, Scope
from bot.app import Bot
from bot.presence import Availability
from bot.sim.company import Person
from tests.api_contract import check_response
from tests.helpers import wait_until
from tests.integration.api_fuzz_hooks import ANSWERS_ENV, PEOPLE_ENV, PINGS_ENV, RECEIVER_ENV
from tests.integration.bot_harness import Sims, free_port, running_bot, simulators
from tests.integration.webhook_receiver import Receiver

REPO: Final = Path(__file__).parents[2]
MAX_EXAMPLES: Final = 12
"""Cases per operation and phase: enough to find a crash or a drift, bounded for the suite."""
CHECKS: Final = "all"
"""Every schemathesis check: server errors, status codes, content types, headers, bodies,
negative data rejected, valid data accepted, auth enforced, undeclared methods answered 405."""
HELD_OPEN_MEDIA_TYPES: Final = frozenset({"text/event-stream"})
"""A response that never ends (a live stream) cannot be fuzzed by a client that reads whole
bodies: operations answering with one are left out here and checked by their own tests
(check_response). To fuzz one anyway, give it a way to end (a query parameter named `timeout`
is already cut short by api_fuzz_hooks) and drop its media type from this set."""
RUN_DEADLINE: Final = 90.0
FUZZ_SETTINGS: Final = {
    # A budget the fuzzer never meets, so every answer is about the request, not the rate.
    "API_REQUESTS_PER_MINUTE": "1000000",
    # The fuzzer's webhook URLs are rewritten to the test's receiver on 127.0.0.1 (see
    # api_fuzz_hooks.local_url), which the bot refuses otherwise.
    "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
}
REJECTIONS: Final = [
    *("400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx")
]
"""What invalid data may be answered with: schemathesis's defaults, and 413."""
METHODS: Final = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})
"""The keys of a path item that are operations (the others: `parameters`, `summary`, ...)."""
KEPT_WEBHOOKS: Final = 3
"""Webhooks the fuzzer reads, changes, pings and retries, but never deletes."""
DOOMED_WEBHOOKS: Final = 6
"""Webhooks only DELETE is given, so the others keep theirs."""


@dataclass(frozen=True)
class Live:
    bot: Bot
    sims: Sims
    key: str
    session: aiohttp.ClientSession
    receiver: Receiver

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.bot.http_port}/api/v1"

    async def get(self, path: str, **params: str) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.session.get(self.base + path, headers=headers, params=params) as reply:
            body = await reply.json()
            check_response("GET", path, reply.status, body, reply.headers)
            assert reply.status == 200, body
            return body

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        async with self.session.post(self.base + path, headers=headers, json=body) as reply:
            answer = await reply.json()
            check_response("POST", path, reply.status, answer, reply.headers)
            assert reply.status == 201, answer
            return answer


@dataclass
class LoopbackOnly:
    """An audit hook that notes every connection and name lookup this process (the bot, its
    simulators, the receiver) makes to anything but a loopback address, while it is on.

    Audit hooks cannot be removed; once the test is over this one only returns."""

    on: bool = False
    strays: list[str] = field(default_factory=list)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.on:
            return
        if event == "socket.connect":
            address = args[1]
            if isinstance(address, tuple) and not _loopback(address[0]):
                self.strays.append(f"connect {address!r}")
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"):
            host = args[0]
            if host is not None and not _loopback(host):
                self.strays.append(f"{event} {host!r}")

    @contextlib.contextmanager
    def watching(self) -> Iterator[LoopbackOnly]:
        sys.addaudithook(self)
        self.on = True
        try:
            yield self
        finally:
            self.on = False


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture
async def live(tmp_path: Path, receiver: Receiver) -> AsyncIterator[Live]:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", **FUZZ_SETTINGS) as bot,
        aiohttp.ClientSession() as session,
    ):
        _, key = await ApiKeys(bot.store).create("fuzz", [s.value for s in Scope])
        yield Live(bot, sims, key, session, receiver)


def _ref(person: Person) -> str:
    assert person.slack_id is not None
    return person.slack_id


def _refs(people: Iterable[Person]) -> list[str]:
    """Every kind of reference to each person: Slack id, email, extension id and number."""
    refs: list[str] = []
    for person in people:
        refs += [_ref(person), person.email, str(person.extension_id)]
        if person.extension_number is not None:
            refs.append(person.extension_number)
    return refs


def _held_open(document: dict[str, Any]) -> list[str]:
    """The operationIds of operations that answer with a response that stays open."""
    held = []
    for item in document["paths"].values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            media = {m for r in operation["responses"].values() for m in r.get("content", {})}
            if media & HELD_OPEN_MEDIA_TYPES:
                held.append(operation["operationId"])
    return held


@dataclass(frozen=True)
class Known:
    """Real identifiers for the fuzzer to mix into what it generates."""

    refs: list[str]
    cursors: list[str]
    webhooks: list[str]
    doomed: list[str]
    events: list[int]
    delivery_cursors: list[str]


def _config(known: Known, excluded: list[str]) -> str:
    """A schemathesis.toml: real people, cursors, webhooks and events mixed into the data."""

    def dictionary(name: str, values: list[Any]) -> list[str]:
        return [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]

    def operation(operation_id: str, *settings: str) -> list[str]:
        return ["[[operations]]", f'include-operation-id = "{operation_id}"', *settings]

    lines = [
        'hooks = "tests.integration.api_fuzz_hooks"',
        "[generation]",
        'database = "none"',
        *dictionary("people", known.refs),
        *dictionary("cursors", known.cursors),
        *dictionary("webhooks", known.webhooks),
        *dictionary("doomed", known.doomed),
        *dictionary("events", known.events),
        *dictionary("delivery_cursors", known.delivery_cursors),
        # A body over the limit is refused with 413 before it is read, whatever else is wrong
        # with it: that is a rejection too (the defaults, and 413).
        "[checks.negative_data_rejection]",
        f"expected-statuses = {json.dumps(REJECTIONS)}",
        "[parameters]",
        # Half the references name someone real, so the 200 answers are fuzzed as well as 404s.
        '"path.ref" = { dictionary = "people", probability = 0.5 }',
        # A cursor is opaque: only one the API gave out is valid data, so valid cases use those.
        '"query.cursor" = { dictionary = "cursors", probability = 1.0 }',
        # Half the webhook ids and event ids are real, so those operations answer more than 404.
        '"path.id" = { dictionary = "webhooks", probability = 0.5 }',
        '"path.event_id" = { dictionary = "events", probability = 0.5 }',
        # DELETE gets webhooks of its own, so every other operation keeps finding its ones.
        *operation(
            "deleteWebhook",
            'parameters = { "path.id" = { dictionary = "doomed", probability = 0.5 } }',
        ),
        *operation(
            "listWebhookDeliveries",
            'parameters = { "query.cursor" = '
            '{ dictionary = "delivery_cursors", probability = 1.0 } }',
        ),
    ]
    for operation_id in excluded:
        lines += operation(operation_id, "enabled = false")
    return "\n".join(lines) + "\n"


async def _seed_every_kind_of_person(live: Live) -> list[Person]:
    """Someone free, someone on a call, someone ringing, someone hidden: every shape of answer."""
    sims, bot = live.sims, live.bot
    free, talking, ringing, private = sims.people()[:4]
    sims.call(talking, "connected")
    sims.call(ringing, "ringing")
    assert private.extension_id is not None
    sims.rc.set_presence(private.extension_id, allowSeeMyPresence=False)
    expected = {
        _ref(talking): Availability.ON_CALL,
        _ref(ringing): Availability.RINGING,
        _ref(private): Availability.HIDDEN,
    }
    await wait_until(
        lambda: all(bot.availability(user) is want for user, want in expected.items()),
        message="the bot to see the call, the ring and the hidden presence",
    )
    return [free, talking, ringing, private]


def _operations(document: dict[str, Any], leave_out: set[str]) -> set[str]:
    """`METHOD PATH` of each operation in the document, as schemathesis labels them."""
    return {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS and operation["operationId"] not in leave_out
    }


async def _schemathesis(
    live: Live, config: Path, people: list[str], answers: Path, pings: Path
) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st), "--config-file", str(config), "--no-color", "run", f"{live.base}/openapi.json",
        "--header", f"Authorization: Bearer {live.key}",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "11",
        # One worker: Python 3.11 before 3.11.8 cannot parse ASTs in two threads at once
        # (gh-106905), which Hypothesis does while describing strategies.
        "--workers", "1",
        "--request-timeout", "10",
        "--max-failures", "20",
        cwd=config.parent,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO),
            ANSWERS_ENV: str(answers),
            PINGS_ENV: str(pings),
            RECEIVER_ENV: f"127.0.0.1:{live.receiver.port}",
            PEOPLE_ENV: json.dumps(people),
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), RUN_DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def _webhooks(live: Live, count: int) -> list[str]:
    """Webhooks for everyone's changes, delivered to the test's receiver."""
    made = [
        await live.post("/webhooks", {"url": live.receiver.url(f"/seeded/{n}")})
        for n in range(count)
    ]
    return [str(webhook["id"]) for webhook in made]


async def _delivered_to_each(live: Live, webhooks: list[str], changes: int) -> list[int]:
    """The event ids of the first `changes` deliveries, once every webhook has them all."""

    async def delivered() -> bool:
        for webhook in webhooks:
            page = await live.get(f"/webhooks/{webhook}/deliveries")
            done = [d for d in page["deliveries"] if d["state"] == "delivered"]
            if len(done) < changes:
                return False
        return True

    await wait_until(delivered, message="each webhook to get every change")
    page = await live.get(f"/webhooks/{webhooks[0]}/deliveries")
    return sorted(int(d["event_id"]) for d in page["deliveries"])


async def test_schemathesis_finds_no_server_error_and_nothing_off_the_schema(
    live: Live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LoopbackOnly().watching() as guard:
        try:
            await _fuzz(live, tmp_path, caplog)
        finally:
            # First of all: nothing this run did may have reached beyond this machine.
            assert not guard.strays, guard.strays


async def _fuzz(live: Live, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    webhooks = await _webhooks(live, KEPT_WEBHOOKS + DOOMED_WEBHOOKS)
    people = await _seed_every_kind_of_person(live)
    events = await _delivered_to_each(live, webhooks, changes=3)
    document = await live.get("/openapi.json")
    cursors = [
        page["next_cursor"]
        for limit in ("1", "3", "7")
        if (page := await live.get("/people", limit=limit))["next_cursor"] is not None
    ]
    assert cursors, "the directory is bigger than a page of 7"
    delivery_cursors = [
        (await live.get(f"/webhooks/{webhooks[0]}/deliveries", limit=limit))["next_cursor"]
        for limit in ("1", "2")
    ]
    known = Known(
        refs=_refs(people),
        cursors=cursors,
        webhooks=webhooks[:KEPT_WEBHOOKS],
        doomed=webhooks[KEPT_WEBHOOKS:],
        events=events,
        delivery_cursors=delivery_cursors,
    )
    held_open = _held_open(document)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(known, held_open))
    answers, pings = tmp_path / "answers.txt", tmp_path / "pings.txt"
    pings.touch()

    code, report = await _schemathesis(live, config, known.refs, answers, pings)

    assert code == 0, report
    # Schemathesis leaves out the operation that serves the document itself.
    fuzzed = _operations(document, leave_out={"getOpenApi", *held_open})
    statuses: dict[str, set[int]] = {label: set() for label in fuzzed}
    for line in answers.read_text().splitlines():
        label, _, status = line.rpartition(" ")
        statuses.setdefault(label, set()).add(int(status))
    for label, seen in statuses.items():
        assert label in fuzzed, f"{label} was fuzzed but is not in the document"
        # Only ever 404 means the fuzzer never named anything real: give it real identifiers
        # (a dictionary in _config) or document OpenAPI links from the operation that makes
        # them (schemathesis follows links in its stateful phase).
        assert any(200 <= status < 300 for status in seen), f"{label} only answered {seen}"
        assert 401 in seen, f"{label} was never tried without a key: {seen}"
        assert max(seen) < 500, f"{label}: {sorted(seen)}"
    await _every_delivery_went_to_the_receiver(
        live, [json.loads(line) for line in pings.read_text().splitlines()]
    )
    failures = [r for r in caplog.records if r.name.startswith("bot") and r.levelno >= ERROR]
    assert not failures, [r.getMessage() for r in failures]


async def _every_delivery_went_to_the_receiver(live: Live, answered: list[dict[str, Any]]) -> None:
    """Whatever URLs the fuzzer gave, the bot's deliveries and pings went to the receiver: an
    http:// one was taken there, an https:// one failed its TLS handshake there (the receiver
    speaks plain HTTP); none was refused, unresolved or unreachable. That no connection went
    anywhere else is LoopbackOnly's to say."""
    delivered = {ping["webhook_id"] for ping in answered if ping["delivered"]}
    assert delivered, "no ping reached the receiver"
    assert {ping["error"] for ping in answered if not ping["delivered"]} <= {"TLS failed"}
    received = live.receiver.received
    assert delivered == {r.webhook_id for r in received if r.webhook_id.startswith("ping_")}

    def settled() -> bool:
        events = [r for r in received if r.webhook_id.startswith("evt_")]
        return live.bot.stats().webhooks.delivered == len(events)

    await wait_until(settled, message="each delivery the bot made to be one the receiver got")
