"""Webhooks end to end: the bot against both simulators, a receiver we control, signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.api.keys import ApiKeys, Scope
from bot.app import Bot
from bot.sim.company import Person
from tests.api_contract import check_response
from tests.helpers import ControlClient, wait_until
from tests.integration.bot_harness import Sims, free_port, running_bot, simulators
from tests.integration.webhook_receiver import Receiver, always, failing_first, hanging
from tests.log_capture import cli_logging


class Api:
    """A caller of the bot's API, checking every answer against the OpenAPI document."""

    def __init__(self, port: int, session: aiohttp.ClientSession) -> None:
        self.base = f"http://127.0.0.1:{port}/api/v1"
        self.session = session

    async def call(
        self, method: str, path: str, key: str | None, body: Any = None, **params: str
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        async with self.session.request(
            method, self.base + path, headers=headers, json=body, params=params
        ) as reply:
            answer = await reply.json() if reply.content_type == "application/json" else None
            check_response(method, path, reply.status, answer, reply.headers)
            return reply.status, answer


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(free_port())
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Bot, Sims, Api]]:
    # Standard Webhooks' schedule is days long; 1200 times faster, the first retries take
    # moments and the fourth attempt comes after 1.5 s.
    async with (
        simulators(scale=1200.0) as sims,
        running_bot(sims, tmp_path / "bot.db", API_REQUESTS_PER_MINUTE="10000") as bot,
        aiohttp.ClientSession() as session,
    ):
        yield bot, sims, Api(bot.http_port or 0, session)


async def new_key(bot: Bot, *scopes: Scope) -> str:
    _, key = await ApiKeys(bot.store).create("tests", [s.value for s in scopes])
    return key


async def register(api: Api, key: str, receiver: Receiver, path: str, **extra: Any) -> str:
    status, made = await api.call("POST", "/webhooks", key, {"url": receiver.url(path), **extra})
    assert status == 201, made
    receiver.secrets[path] = made["secret"]
    return str(made["id"])


def async_equals(read: Callable[[], Awaitable[int]], value: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await read() == value

    return check


def ref(person: Person) -> str:
    assert person.slack_id is not None
    return person.slack_id


async def test_every_webhook_endpoint_refuses_missing_wrong_revoked_and_unscoped_keys(
    running: tuple[Bot, Sims, Api], receiver: Receiver
) -> None:
    bot, _, api = running
    writer = await new_key(bot, Scope.WEBHOOKS_WRITE)
    reader = await new_key(bot, Scope.AVAILABILITY_READ)
    record, revoked = await ApiKeys(bot.store).create("old", ["webhooks:write"])
    await ApiKeys(bot.store).revoke(record.id)
    hook = await register(api, writer, receiver, "/ok")
    operations = [
        ("POST", "/webhooks", {"url": receiver.url("/x")}),
        ("GET", "/webhooks", None),
        ("GET", f"/webhooks/{hook}", None),
        ("PATCH", f"/webhooks/{hook}", {"description": "x"}),
        ("DELETE", f"/webhooks/{hook}", None),
        ("GET", f"/webhooks/{hook}/deliveries", None),
        ("POST", f"/webhooks/{hook}/deliveries/1/retry", None),
        ("POST", f"/webhooks/{hook}/ping", None),
    ]
    for method, path, body in operations:
        for key, status, code in (
            (None, 401, "unauthorized"),
            ("rcs_" + "x" * 43, 401, "unauthorized"),
            (revoked, 401, "unauthorized"),
            (reader, 403, "forbidden"),
        ):
            got, answer = await api.call(method, path, key, body)
            assert (got, answer["error"]) == (status, code), (method, path, key)
    assert len(receiver.received) == 0  # not even the ping went out
    status, listed = await api.call("GET", "/webhooks", writer)
    assert (status, [w["id"] for w in listed["webhooks"]]) == (200, [hook])  # nothing changed


async def test_a_call_reaches_the_receiver_signed_with_what_changed(
    running: tuple[Bot, Sims, Api], receiver: Receiver
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.WEBHOOKS_WRITE)
    person, other = sims.people()[0], sims.people()[1]
    hook = await register(api, key, receiver, "/everyone", description="router")
    only_other = await register(api, key, receiver, "/other", people=[other.email])
    only_free = await register(api, key, receiver, "/free", availability=["available"])

    async with aiohttp.ClientSession() as session:
        control = ControlClient(sims.rc.url, session)
        await control.post(f"extensions/{person.extension_id}/call", {"state": "connected"})
    await wait_until(lambda: len(receiver.at("/everyone")) == 1, message="the delivery")
    [got] = receiver.at("/everyone")
    assert got.verified
    assert got.body["type"] == "availability.changed"
    data = got.body["data"]
    assert (data["slack_user_id"], data["previous"], data["availability"]) == (
        ref(person),
        "available",
        "on_call",
    )
    assert (data["reachable"], data["extension_number"]) == (False, person.extension_number)
    assert got.webhook_id.startswith("evt_")
    assert got.headers["content-type"] == "application/json"

    sims.call(person, "ended")
    await wait_until(lambda: len(receiver.at("/free")) == 1, message="the change to available")
    assert receiver.at("/free")[0].body["data"]["availability"] == "available"
    await wait_until(lambda: len(receiver.at("/everyone")) == 2, message="the second delivery")
    assert receiver.at("/other") == []  # someone else's changes are not sent there

    status, page = await api.call("GET", f"/webhooks/{hook}/deliveries", key)
    assert status == 200
    assert [(d["state"], d["attempts"], d["last_status_code"]) for d in page["deliveries"]] == [
        ("delivered", 1, 200),
        ("delivered", 1, 200),
    ]
    assert [d["webhook_id"] for d in page["deliveries"]] == [
        r.webhook_id for r in reversed(receiver.at("/everyone"))
    ]  # newest first

    status, ping = await api.call("POST", f"/webhooks/{only_other}/ping", key)
    assert (status, ping["delivered"], ping["status_code"]) == (200, True, 200)
    [pinged] = receiver.at("/other")
    assert pinged.verified
    assert (pinged.body["type"], pinged.webhook_id) == ("webhook.ping", ping["webhook_id"])
    assert pinged.body["data"] == {"webhook_id": only_other}

    status, shown = await api.call("GET", f"/webhooks/{only_other}", key)
    assert status == 200
    assert "secret" not in shown
    assert (shown["people"], shown["availability"]) == ([ref(other)], None)
    status, listed = await api.call("GET", "/webhooks", key)
    assert [w["id"] for w in listed["webhooks"]] == [hook, only_other, only_free]
    assert bot.stats().webhooks.delivered >= 3
    assert bot.stats().webhooks.latency_p95_ms is not None


async def test_retries_keep_the_id_gone_disables_and_a_hanging_receiver_slows_nobody(
    running: tuple[Bot, Sims, Api], receiver: Receiver
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.WEBHOOKS_WRITE)
    receiver.on("/flaky", failing_first(3))
    receiver.on("/gone", always(410))
    receiver.on("/hang", hanging())
    people = sims.people()[:4]
    flaky = await register(api, key, receiver, "/flaky", people=[ref(people[0])])
    gone = await register(api, key, receiver, "/gone")
    await register(api, key, receiver, "/hang")
    await register(api, key, receiver, "/healthy")

    for person in people:
        sims.call(person, "connected")
    await wait_until(lambda: len(receiver.at("/healthy")) == 4, message="every change, healthy")
    await wait_until(lambda: len(receiver.at("/hang")) >= 4, message="the hanging receiver held")
    for person in people:
        sims.call(person, "ended")
    # Still delivered at once while the other receiver holds every connection it was given.
    await wait_until(lambda: len(receiver.at("/healthy")) == 8, message="the second changes")

    await wait_until(lambda: len(receiver.at("/gone")) >= 1, message="the 410")
    status, shown = await api.call("GET", f"/webhooks/{gone}", key)
    assert (status, shown["enabled"]) == (200, False)
    assert "410" in shown["disabled_reason"]

    await wait_until(
        lambda: len(receiver.at("/flaky")) == 5,
        timeout=20,
        message="the flaky receiver's 3 failures, then both changes",
    )
    calls = receiver.at("/flaky")
    assert all(got.verified for got in calls)
    first, second = calls[0].webhook_id, calls[4].webhook_id
    # The same webhook-id each time (500, 500, 500, 200), and the next change only after it.
    assert [got.webhook_id for got in calls] == [first] * 4 + [second]
    assert [got.body["data"]["availability"] for got in (calls[0], calls[4])] == [
        "on_call",
        "available",
    ]
    status, page = await api.call("GET", f"/webhooks/{flaky}/deliveries", key)
    assert [(d["webhook_id"], d["state"], d["attempts"]) for d in page["deliveries"]] == [
        (second, "delivered", 1),
        (first, "delivered", 4),
    ]
    status, shown = await api.call("GET", f"/webhooks/{flaky}", key)
    assert shown["enabled"] is True

    gone_count = len(receiver.at("/gone"))
    sims.call(people[0], "connected")
    await wait_until(lambda: len(receiver.at("/healthy")) == 9, message="a later change")
    assert len(receiver.at("/gone")) == gone_count  # nothing more to a disabled endpoint


async def test_bodies_are_validated_and_urls_checked(
    running: tuple[Bot, Sims, Api], receiver: Receiver
) -> None:
    bot, sims, api = running
    key = await new_key(bot, Scope.WEBHOOKS_WRITE)
    good = receiver.url("/ok")
    for body in (
        {},
        {"url": good, "colour": "red"},
        {"url": 7},
        {"url": "ftp://example.com/"},
        {"url": "http://user:pass@127.0.0.1/"},
        {"url": good, "people": []},
        {"url": good, "people": ["nobody@example.com"]},
        {"url": good, "availability": ["asleep"]},
        {"url": good, "description": 5},
        {"url": good, "description": "line\nbreak"},
        {"url": good, "description": "\ud800"},
        {"url": " " + good},
        {"url": good.replace("/ok", ":0/ok")},
        {"url": "http://bücher.example/"},
        [good],
    ):
        status, answer = await api.call("POST", "/webhooks", key, body)
        assert (status, answer["error"]) == (400, "invalid_request"), body
    for raw in (b"[" * 8000 + b"]" * 8000, b"\xff\xfe", b"null", b"{"):
        async with api.session.post(
            f"{api.base}/webhooks", data=raw, headers={"Authorization": f"Bearer {key}"}
        ) as reply:
            answer = await reply.json()
            check_response("POST", "/webhooks", reply.status, answer, reply.headers)
            assert (reply.status, answer["error"]) == (400, "invalid_request"), raw[:8]
    status, answer = await api.call("GET", f"/webhooks/wh_{'0' * 16}/deliveries", key, limit="²")
    assert status in (400, 404)
    status, answer = await api.call(
        "POST", "/webhooks", key, {"url": good, "description": "x" * 20_000}
    )
    assert (status, answer["error"]) == (413, "too_large")
    hook = await register(api, key, receiver, "/ok")
    for body in ({"enabled": "yes"}, {"id": "wh_0"}, {"url": "https://"}):
        status, answer = await api.call("PATCH", f"/webhooks/{hook}", key, body)
        assert (status, answer["error"]) == (400, "invalid_request"), body
    for path in ("/webhooks/wh_0000000000000000", "/webhooks/nope"):
        status, answer = await api.call("GET", path, key)
        assert (status, answer["error"]) == (404, "not_found")
    for cursor in ("bogus", "YmVmb3JlOng"):
        status, answer = await api.call("GET", f"/webhooks/{hook}/deliveries", key, cursor=cursor)
        assert (status, answer["error"]) == (400, "invalid_request")
    status, page = await api.call("GET", f"/webhooks/{hook}/deliveries", key, cursor="")
    assert (status, page["next_cursor"]) == (200, None)  # empty, as on /people: the first page
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467 desk"  # emoji joined by U+200D
    status, changed = await api.call("PATCH", f"/webhooks/{hook}", key, {"description": family})
    assert (status, changed["description"]) == (200, family)
    status, answer = await api.call("POST", f"/webhooks/{hook}/deliveries/99999/retry", key)
    assert (status, answer["error"]) == (404, "not_found")

    status, changed = await api.call(
        "PATCH", f"/webhooks/{hook}", key, {"availability": ["on_call"], "enabled": False}
    )
    assert (status, changed["availability"], changed["enabled"]) == (200, ["on_call"], False)
    person = sims.people()[2]

    async def changes() -> int:
        events = await bot.store.events_after(bot.team_id, 0, 1000)
        return len([e for e in events if e.user_id == ref(person)])

    sims.call(person, "connected")
    await wait_until(lambda: changes(), message="the change made while disabled is recorded")
    status, changed = await api.call("PATCH", f"/webhooks/{hook}", key, {"enabled": True})
    assert (status, changed["enabled"], changed["disabled_reason"]) == (200, True, None)
    sims.call(person, "ended")
    sims.call(person, "connected")
    await wait_until(lambda: len(receiver.at("/ok")) == 1, message="the change after re-enabling")
    await wait_until(async_equals(changes, 3), message="every change recorded")
    status, page = await api.call("GET", f"/webhooks/{hook}/deliveries", key)
    # Only the on_call change after re-enabling; the one made while it was off is not sent.
    assert [d["webhook_id"] for d in page["deliveries"]] == [receiver.at("/ok")[0].webhook_id]

    status, _ = await api.call("DELETE", f"/webhooks/{hook}", key)
    assert status == 204
    status, answer = await api.call("GET", f"/webhooks/{hook}", key)
    assert (status, answer["error"]) == (404, "not_found")


@pytest.mark.parametrize("sdk_debug", [False, True], ids=["debug", "debug-with-sdk"])
async def test_keys_secrets_and_receivers_paths_never_reach_the_log(
    tmp_path: Path, sdk_debug: bool
) -> None:
    receiver = Receiver(free_port())
    token_path = "/hooks/tok_8c1d5e0f2a7b4c69"  # receivers often put a token in the path
    receiver.on(token_path, failing_first(2))  # the ping, then the first attempt
    receiver.on("/gone/tok_11aa22bb33cc44dd", always(410))
    await receiver.start()
    with cli_logging("DEBUG", sdk_debug=sdk_debug) as out:
        try:
            async with (
                simulators(scale=1200.0) as sims,
                running_bot(sims, tmp_path / "bot.db") as bot,
                aiohttp.ClientSession() as session,
            ):
                api = Api(bot.http_port or 0, session)
                key = await new_key(bot, Scope.WEBHOOKS_WRITE)
                hook = await register(api, key, receiver, token_path)
                gone = await register(api, key, receiver, "/gone/tok_11aa22bb33cc44dd")
                assert (await api.call("POST", f"/webhooks/{hook}/ping", key))[0] == 200
                sims.call(sims.people()[0], "connected")
                await wait_until(
                    lambda: len(receiver.at(token_path)) == 3, message="a retry, then delivered"
                )

                async def disabled() -> bool:
                    _, shown = await api.call("GET", f"/webhooks/{gone}", key)
                    return shown["enabled"] is False

                await wait_until(disabled, message="the 410 endpoint disabled")
        finally:
            await receiver.stop()
    text = out.getvalue()
    assert f"webhook {gone} disabled" in text  # not vacuous: the webhooks logged
    for secret in (key, *receiver.secrets.values()):
        assert secret not in text
    if not sdk_debug:
        # Our lines name an endpoint by id and host only. (The SQL a library logs at DEBUG
        # holds the URL, which is not a credential we can tell from any other path.)
        for token in ("tok_8c1d5e0f2a7b4c69", "tok_11aa22bb33cc44dd"):
            assert token not in text
