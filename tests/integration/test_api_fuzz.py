"""Schemathesis against the live bot: no server error, no answer off the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
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
from tests.integration.api_fuzz_hooks import ANSWERS_ENV
from tests.integration.bot_harness import Sims, running_bot, simulators

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
}


@dataclass(frozen=True)
class Live:
    bot: Bot
    sims: Sims
    key: str
    session: aiohttp.ClientSession

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


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", **FUZZ_SETTINGS) as bot,
        aiohttp.ClientSession() as session,
    ):
        _, key = await ApiKeys(bot.store).create("fuzz", [s.value for s in Scope])
        yield Live(bot, sims, key, session)


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
    for operations in document["paths"].values():
        for operation in operations.values():
            media = {m for r in operation["responses"].values() for m in r.get("content", {})}
            if media & HELD_OPEN_MEDIA_TYPES:
                held.append(operation["operationId"])
    return held


def _config(refs: list[str], cursors: list[str], excluded: list[str]) -> str:
    """A schemathesis.toml: real people and cursors mixed into the generated data."""
    lines = [
        'hooks = "tests.integration.api_fuzz_hooks"',
        "[generation]",
        'database = "none"',
        "[dictionaries.people]",
        f"values = {json.dumps(refs)}",
        "[dictionaries.cursors]",
        f"values = {json.dumps(cursors)}",
        "[parameters]",
        # Half the references name someone real, so the 200 answers are fuzzed as well as 404s.
        '"path.ref" = { dictionary = "people", probability = 0.5 }',
        # A cursor is opaque: only one the API gave out is valid data, so valid cases use those.
        '"query.cursor" = { dictionary = "cursors", probability = 1.0 }',
    ]
    for operation_id in excluded:
        lines += ["[[operations]]", f'include-operation-id = "{operation_id}"', "enabled = false"]
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
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation["operationId"] not in leave_out
    }


async def _schemathesis(live: Live, config: Path, answers: Path) -> tuple[int, str]:
    st = Path(sys.executable).with_name("st")
    process = await asyncio.create_subprocess_exec(
        str(st), "--config-file", str(config), "--no-color", "run", f"{live.base}/openapi.json",
        "--header", f"Authorization: Bearer {live.key}",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "11",
        "--workers", "2",
        "--request-timeout", "10",
        "--max-failures", "20",
        cwd=config.parent,
        env={**os.environ, "PYTHONPATH": str(REPO), ANSWERS_ENV: str(answers)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), RUN_DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def test_schemathesis_finds_no_server_error_and_nothing_off_the_schema(
    live: Live, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    people = await _seed_every_kind_of_person(live)
    document = await live.get("/openapi.json")
    cursors = [
        page["next_cursor"]
        for limit in ("1", "3", "7")
        if (page := await live.get("/people", limit=limit))["next_cursor"] is not None
    ]
    assert cursors, "the directory is bigger than a page of 7"
    held_open = _held_open(document)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(_refs(people), cursors, held_open))
    answers = tmp_path / "answers.txt"

    code, report = await _schemathesis(live, config, answers)

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
    failures = [r for r in caplog.records if r.name.startswith("bot") and r.levelno >= ERROR]
    assert not failures, [r.getMessage() for r in failures]
