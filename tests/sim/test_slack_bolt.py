"""Unmodified slack_bolt apps against the Slack simulator: Socket Mode, HTTP, OAuth, events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import FileInstallationStore
from slack_sdk.oauth.state_store import FileOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.sim.slack import SlackSimulator
from tests.helpers import wait_until
from tests.sim.slack_helpers import closed_port_url, control, running_sim, served


@pytest.fixture
async def sim() -> AsyncIterator[SlackSimulator]:
    async with running_sim() as simulator:
        yield simulator


def member(sim: SlackSimulator, index: int = 0) -> str:
    return str([u["id"] for u in sim.users() if not u["is_admin"]][index])


def bolt_app(sim: SlackSimulator, seen: list[dict[str, Any]], **options: Any) -> AsyncApp:
    """A small app: /rcstatus acks then responds; it records every command and status event."""
    if "oauth_settings" not in options:
        options["client"] = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
    else:
        options["client"] = AsyncWebClient(base_url=sim.api_url)
    app = AsyncApp(signing_secret=sim.signing_secret, **options)

    @app.command("/rcstatus")
    async def rcstatus(ack: AsyncAck, respond: AsyncRespond, command: dict[str, Any]) -> None:
        seen.append(command)
        await ack(f"Looking up {command['text']}")
        await respond(f"{command['text']} is on a call")

    @app.event("user_status_changed")
    async def status_changed(event: dict[str, Any]) -> None:
        seen.append(event)

    return app


@pytest.fixture
async def socket_app(sim: SlackSimulator) -> AsyncIterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    handler = AsyncSocketModeHandler(bolt_app(sim, seen), sim.app_token)
    await handler.connect_async()
    await wait_until(lambda: sim.socket_connections == 1)
    try:
        yield seen
    finally:
        await handler.close_async()


@pytest.fixture
async def http_app(sim: SlackSimulator) -> AsyncIterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    async with served(bolt_app(sim, seen).web_app()) as app_url:
        sim.app_url = app_url
        yield seen


async def test_socket_mode_command_acks_and_responds(
    sim: SlackSimulator, socket_app: list[dict[str, Any]]
) -> None:
    alice, bob = member(sim, 0), member(sim, 1)
    bob_handle = next(u["name"] for u in sim.users() if u["id"] == bob)

    status, outcome = await control(
        sim,
        "POST",
        "/_sim/commands",
        {
            "user_id": alice,
            "command": "/rcstatus",
            "text": f"@{bob_handle}",
            "expect_responses": 1,
        },
    )

    assert status == 200
    assert outcome["via"] == "socket_mode"
    assert outcome["ack"] == {"text": f"Looking up <@{bob}>"}
    assert [r["text"] for r in outcome["responses"]] == [f"<@{bob}> is on a call"]
    assert socket_app[0]["user_id"] == alice
    assert socket_app[0]["team_id"] == sim.team_id
    assert socket_app[0]["response_url"].startswith(sim.url)
    kinds = sorted(m["kind"] for m in sim.messages(user=alice))
    assert kinds == ["ack", "response_url"]


async def test_socket_mode_survives_a_refresh(
    sim: SlackSimulator, socket_app: list[dict[str, Any]]
) -> None:
    assert await sim.refresh_sockets() == 1
    await wait_until(lambda: sim.stats()["calls"].get("apps.connections.open") == 2)
    await wait_until(lambda: sim.socket_connections == 1)

    outcome = await sim.send_command(member(sim), "/rcstatus", "after refresh", expect_responses=1)

    assert outcome["ack"] == {"text": "Looking up after refresh"}


async def test_http_command_with_valid_signature(
    sim: SlackSimulator, http_app: list[dict[str, Any]]
) -> None:
    outcome = await sim.send_command(member(sim), "/rcstatus", "hello", expect_responses=1)

    assert outcome["via"] == "http"
    assert outcome["http_status"] == 200
    assert outcome["ack"] == {"text": "Looking up hello"}
    assert [r["text"] for r in outcome["responses"]] == ["hello is on a call"]


@pytest.mark.parametrize(
    ("switch", "value"), [("signing_secret", "0" * 32), ("timestamp_skew", -301.0)]
)
async def test_http_refuses_bad_signatures_and_stale_timestamps(
    sim: SlackSimulator, http_app: list[dict[str, Any]], switch: str, value: Any
) -> None:
    status, _ = await control(sim, "POST", "/_sim/delivery", {switch: value})
    assert status == 200

    outcome = await sim.send_command(member(sim), "/rcstatus", "sneaky", wait=0.2)

    assert outcome["http_status"] == 401
    assert outcome["ack"] is None
    assert outcome["responses"] == []
    assert http_app == []


async def test_response_url_takes_five_posts(sim: SlackSimulator) -> None:
    statuses: list[int] = []
    app = AsyncApp(
        signing_secret=sim.signing_secret,
        client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
    )

    @app.command("/rcstatus")
    async def chatty(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        for n in range(6):
            statuses.append((await respond(f"reply {n}")).status_code)

    async with served(app.web_app()) as app_url:
        sim.app_url = app_url
        outcome = await sim.send_command(member(sim), "/rcstatus", expect_responses=5)
        await wait_until(lambda: len(statuses) == 6)

    assert outcome["ack"] == {}
    assert [r["text"] for r in outcome["responses"]] == [f"reply {n}" for n in range(5)]
    assert statuses == [200] * 5 + [404]


async def test_button_click_from_home_reaches_the_app(sim: SlackSimulator) -> None:
    alice, bob = member(sim, 0), member(sim, 1)
    clicks: list[dict[str, Any]] = []
    app = AsyncApp(
        signing_secret=sim.signing_secret,
        client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
    )

    @app.action("notify_when_free")
    async def notify(ack: AsyncAck, body: dict[str, Any]) -> None:
        clicks.append(body)
        await ack()

    button = {
        "type": "button",
        "action_id": "notify_when_free",
        "text": {"type": "plain_text", "text": "Notify me"},
        "value": bob,
    }
    await app.client.views_publish(
        user_id=alice,
        view={
            "type": "home",
            "blocks": [{"type": "actions", "block_id": "w", "elements": [button]}],
        },
    )
    async with served(app.web_app()) as app_url:
        sim.app_url = app_url
        status, outcome = await control(
            sim,
            "POST",
            "/_sim/actions",
            {"user_id": alice, "action_id": "notify_when_free", "view": "home", "wait": 0},
        )

    assert status == 200
    assert outcome["ack"] == {}
    (body,) = clicks
    assert body["user"]["id"] == alice
    assert body["actions"][0]["value"] == bob
    assert body["actions"][0]["block_id"] == "w"
    assert body["container"]["type"] == "view"
    assert body["view"]["type"] == "home"
    assert "response_url" not in body


async def test_status_changes_reach_a_socket_mode_app(
    sim: SlackSimulator, socket_app: list[dict[str, Any]]
) -> None:
    alice, bob = member(sim, 0), member(sim, 1)
    status, _ = await control(
        sim,
        "POST",
        f"/_sim/users/{alice}/status",
        {"status_text": "Gone fishing", "status_emoji": ":fish:"},
    )
    assert status == 200
    await AsyncWebClient(token=sim.grant_user_token(bob), base_url=sim.api_url).users_profile_set(
        profile={"status_text": "On a call", "status_emoji": ":telephone_receiver:"}
    )

    def statuses() -> list[tuple[str, str]]:
        return [
            (e["user"]["id"], e["user"]["profile"]["status_text"])
            for e in socket_app
            if e.get("type") == "user_status_changed"
        ]

    await wait_until(lambda: len(statuses()) == 2)
    assert sorted(statuses()) == sorted([(alice, "Gone fishing"), (bob, "On a call")])


async def test_status_changes_reach_an_http_app(
    sim: SlackSimulator, http_app: list[dict[str, Any]]
) -> None:
    alice = member(sim)
    sim.set_status(alice, "Out to lunch", ":sandwich:")

    await wait_until(lambda: len(http_app) == 1)
    assert http_app[0]["type"] == "user_status_changed"
    assert http_app[0]["user"]["profile"]["status_emoji"] == ":sandwich:"
    await wait_until(lambda: sim.stats()["events"].get("acked") == 1)


async def test_oauth_install_flow_stores_a_user_token_that_sets_status(
    sim: SlackSimulator, tmp_path: Path
) -> None:
    alice = member(sim)
    store = FileInstallationStore(base_dir=str(tmp_path / "installations"), client_id=sim.client_id)
    settings = AsyncOAuthSettings(
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        scopes=["commands", "chat:write", "users:read", "users:read.email"],
        user_scopes=["users.profile:write"],
        authorization_url=sim.authorize_url,
        installation_store=store,
        state_store=FileOAuthStateStore(expiration_seconds=600, base_dir=str(tmp_path / "states")),
    )
    app = bolt_app(sim, [], oauth_settings=settings)

    async with served(app.web_app()) as app_url:
        sim.app_url = app_url
        status, outcome = await control(sim, "POST", f"/_sim/users/{alice}/authorize")

    assert status == 200, outcome
    assert outcome["ok"] is True
    assert "users.profile:write" in outcome["scopes"]
    installation = await store.async_find_installation(
        enterprise_id=None, team_id=sim.team_id, user_id=alice
    )
    assert installation is not None
    assert installation.user_id == alice
    assert installation.user_token is not None
    assert installation.user_token.startswith("xoxp-")
    assert installation.bot_user_id == sim.bot_user_id
    await AsyncWebClient(token=installation.user_token, base_url=sim.api_url).users_profile_set(
        profile={"status_text": "Installed", "status_emoji": ":white_check_mark:"}
    )
    assert sim.user(alice)["status_text"] == "Installed"
    assert sim.user(alice)["authorized"] is True


async def test_authorize_fails_clearly_when_the_app_is_down(sim: SlackSimulator) -> None:
    sim.app_url = closed_port_url()

    status, outcome = await control(sim, "POST", f"/_sim/users/{member(sim)}/authorize")

    assert status == 502
    assert outcome["ok"] is False
    assert outcome["error"].startswith("app not reachable")


async def test_commands_without_an_app_report_no_ack(sim: SlackSimulator) -> None:
    sim.app_url = closed_port_url()

    outcome = await sim.send_command(member(sim), "/rcstatus", "anyone?")

    assert outcome["ack"] is None
    assert outcome["error"].startswith("connection_failed")


async def test_bolt_context_sees_the_invoking_user(
    sim: SlackSimulator,
) -> None:
    contexts: list[AsyncBoltContext] = []
    app = AsyncApp(
        signing_secret=sim.signing_secret,
        client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
    )

    @app.command("/rcstatus")
    async def remember(ack: AsyncAck, context: AsyncBoltContext) -> None:
        contexts.append(context)
        await ack()

    handler = AsyncSocketModeHandler(app, sim.app_token)
    await handler.connect_async()
    try:
        await wait_until(lambda: sim.socket_connections == 1)
        outcome = await sim.send_command(member(sim), "/rcstatus", wait=0)
    finally:
        await handler.close_async()

    assert outcome["ack"] == {}
    (context,) = contexts
    assert context.user_id == member(sim)
    assert context.team_id == sim.team_id
    assert context.bot_user_id == sim.bot_user_id


async def test_app_home_opened_lets_the_app_publish_a_view(sim: SlackSimulator) -> None:
    alice = member(sim)
    app = AsyncApp(
        signing_secret=sim.signing_secret,
        client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
    )

    @app.event("app_home_opened")
    async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
        text = {"type": "mrkdwn", "text": f"Hello <@{event['user']}> in {event['channel']}"}
        await client.views_publish(
            user_id=event["user"],
            view={"type": "home", "blocks": [{"type": "section", "text": text}]},
        )

    async with served(app.web_app()) as app_url:
        sim.app_url = app_url
        status, body = await control(
            sim, "POST", "/_sim/events/app_home_opened", {"user_id": alice}
        )
        await wait_until(lambda: alice in sim.views())

    assert status == 200
    assert body["event_id"].startswith("Ev")
    (block,) = sim.views()[alice]["blocks"]
    assert block["text"]["text"].startswith(f"Hello <@{alice}> in D")


async def test_click_in_an_ephemeral_reply_comes_with_a_response_url(sim: SlackSimulator) -> None:
    alice, bob = member(sim, 0), member(sim, 1)
    app = AsyncApp(
        signing_secret=sim.signing_secret,
        client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url),
    )
    button = {
        "type": "button",
        "action_id": "notify_when_free",
        "text": {"type": "plain_text", "text": "Notify me when free"},
        "value": bob,
    }
    clicks: list[dict[str, Any]] = []

    @app.command("/rcstatus")
    async def rcstatus(ack: AsyncAck) -> None:
        await ack(
            text="Bob is on a call",
            blocks=[{"type": "actions", "block_id": "notify", "elements": [button]}],
        )

    @app.action("notify_when_free")
    async def notify(ack: AsyncAck, respond: AsyncRespond, body: dict[str, Any]) -> None:
        clicks.append(body)
        await ack()
        await respond(text="OK, I will tell you", replace_original=False)

    async with served(app.web_app()) as app_url:
        sim.app_url = app_url
        await sim.send_command(alice, "/rcstatus", "@someone", wait=0)
        outcome = await sim.click(alice, "notify_when_free", expect_responses=1)

    assert outcome["ack"] == {}
    assert [r["text"] for r in outcome["responses"]] == ["OK, I will tell you"]
    (body,) = clicks
    assert body["container"]["type"] == "message"
    assert body["container"]["is_ephemeral"] is True
    assert body["actions"][0] | {"action_ts": None} == {
        "action_id": "notify_when_free",
        "block_id": "notify",
        "text": button["text"],
        "value": bob,
        "type": "button",
        "action_ts": None,
    }
    assert body["response_url"].startswith(sim.url + "/actions/")
