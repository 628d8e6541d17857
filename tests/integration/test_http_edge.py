"""What anyone can send the bot's HTTP endpoints: refused cheaply, quietly and boundedly."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app import Bot
from tests.integration.bot_harness import Sims, running_bot, simulators
from tests.log_capture import every_log_record

BATCH = 200


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's v0 signature, as Slack computes it over the exact bytes it sends."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@contextlib.asynccontextmanager
async def http_bot(tmp_path: Path, **extra: str) -> AsyncIterator[tuple[Bot, Sims]]:
    async with (
        simulators() as sims,
        running_bot(sims, tmp_path / "bot.db", SLACK_APP_TOKEN="", **extra) as bot,
    ):
        assert not bot.settings.socket_mode
        yield bot, sims


async def post_many(
    session: aiohttp.ClientSession, url: str, requests: list[tuple[bytes, dict[str, str]]]
) -> list[int]:
    statuses: list[int] = []

    async def one(body: bytes, headers: dict[str, str]) -> int:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            return response.status

    for start in range(0, len(requests), BATCH):
        batch = requests[start : start + BATCH]
        statuses += await asyncio.gather(*(one(body, headers) for body, headers in batch))
    return statuses


def malformed(kind: str, now: int) -> tuple[bytes, dict[str, str]]:
    """One unauthenticated request of each kind the adversarial pass sent (a forged signature)."""
    forged = {"X-Slack-Signature": "v0=" + "0" * 64, "X-Slack-Request-Timestamp": str(now)}
    json_type = {"Content-Type": "application/json"}
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    match kind:
        case "json":
            return b'{"type": "event_callback", "event": {', {**forged, **json_type}
        case "utf8":
            return b'{"type": "\xff\xfe\xc3("}', {**forged, **json_type}
        case "payload":
            return b"payload=%7Bnot-json", {**forged, **form_type}
        case _:
            return b'{"type": "url_verification"}', {
                **forged,
                **json_type,
                "X-Slack-Request-Timestamp": kind,
            }


KINDS = ("json", "utf8", "payload", "abc", "1.5", "1e10")


@pytest.mark.slow
async def test_two_thousand_malformed_requests_of_each_kind_are_refused_quietly(
    tmp_path: Path,
) -> None:
    async with http_bot(tmp_path) as (_bot, sims), aiohttp.ClientSession() as session:
        url = sims.app_url + "/slack/events"
        now = int(time.time())
        with every_log_record() as logs:
            statuses = {
                kind: await post_many(session, url, [malformed(kind, now)] * 2000) for kind in KINDS
            }
        for kind, seen in statuses.items():
            assert set(seen) == {401}, (kind, sorted(set(seen)))
        assert not any(record.exc_info for record in logs.records)
        text = logs.text()
        assert "Traceback" not in text
        # One short line per kind of refusal at most (plus whatever else the bot said meanwhile).
        refusals = [r for r in logs.records if "/slack/events" in r.getMessage()]
        assert len(refusals) <= len(KINDS), text
        assert len(text.encode()) < 4096, text

        # The door still opens for Slack: a real command is answered.
        asker = sims.people()[0]
        outcome = await sims.slack.send_command(str(asker.slack_id), "/rcstatus", "help", wait=5)
        assert outcome["http_status"] == 200, outcome
        assert outcome["responses"], outcome


async def test_signed_but_unreadable_oversized_and_stale_requests(tmp_path: Path) -> None:
    async with http_bot(tmp_path) as (_bot, sims), aiohttp.ClientSession() as session:
        url = sims.app_url + "/slack/events"
        secret = sims.slack.signing_secret
        now = str(int(time.time()))

        def signed(body: bytes, content_type: str, timestamp: str = now) -> dict[str, str]:
            return {
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": sign(secret, timestamp, body),
            }

        cases: list[tuple[bytes, dict[str, str], int]] = [
            (b'{"type": "event_callback", ', signed(b'{"type": "event_callback", ', "x"), 400),
            (b"payload=%7Bnot-json", signed(b"payload=%7Bnot-json", "form"), 400),
            (b"[1, 2, 3]", signed(b"[1, 2, 3]", "application/json"), 400),
            (b'{"a": "\xff"}', signed(b'{"a": "\xff"}', "application/json"), 401),
            (b"{}", signed(b"{}", "application/json", str(int(now) - 301)), 401),
            (b"{}", {"Content-Type": "application/json"}, 401),
            (b"{}", {**signed(b"{}", "application/json"), "X-Slack-Signature": "v0=é"}, 401),
        ]
        big = json.dumps({"type": "event_callback", "pad": "x" * (2 * 1024 * 1024)}).encode()
        cases.append((big, signed(big, "application/json"), 413))
        with every_log_record() as logs:
            for body, headers, expected in cases:
                async with session.post(url, data=body, headers=headers) as response:
                    assert response.status == expected, (body[:40], headers, response.status)
        assert not any(record.exc_info for record in logs.records)

        # A well-formed signed request still reaches Bolt (url_verification is answered by it).
        body = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
        async with session.post(url, data=body, headers=signed(body, "application/json")) as r:
            assert r.status == 200
            answer: Any = await r.json()
            assert answer == {"challenge": "c-123"}


async def state_rows(bot: Bot) -> int:
    return await bot.store.oauth_state_store.live_count()


@pytest.mark.slow
async def test_two_thousand_install_page_visits_leave_the_state_table_bounded(
    tmp_path: Path,
) -> None:
    async with (
        http_bot(tmp_path, INSTALL_REQUESTS_PER_MINUTE="10", TRUSTED_PROXY_HOPS="1") as (bot, sims),
        aiohttp.ClientSession() as session,
    ):
        url = sims.app_url + "/slack/install"

        async def visit(number: int) -> tuple[int, str | None, str]:
            # The part left of our proxy's entry is the client's own claim: forged, and ignored.
            forwarded = f"10.{number % 250}.0.1, 203.0.113.7"
            async with session.get(url, headers={"X-Forwarded-For": forwarded}) as response:
                return response.status, response.headers.get("Retry-After"), await response.text()

        outcomes: list[tuple[int, str | None, str]] = []
        with every_log_record() as logs:
            for start in range(0, 2000, BATCH):
                outcomes += await asyncio.gather(*(visit(n) for n in range(start, start + BATCH)))
        served = [o for o in outcomes if o[0] == 200]
        refused = [o for o in outcomes if o[0] == 429]
        assert len(served) + len(refused) == 2000
        # Ten at once, then one every six seconds (the test takes a few).
        assert 10 <= len(served) <= 15, len(served)
        assert await state_rows(bot) == len(served)
        _status, retry_after, page = refused[0]
        assert retry_after is not None
        assert 1 <= int(retry_after) <= 6
        assert "try again" in page.lower()
        assert not any(record.exc_info for record in logs.records)

        # Someone else (another address: no proxy header here) still connects, end to end.
        person = sims.people()[0]
        assert person.slack_id is not None
        outcome = await sims.slack.authorize(person.slack_id)
        assert outcome.get("ok"), outcome
        assert await bot.store.installation_store.async_find_installation(
            enterprise_id=None, team_id=bot.team_id, user_id=person.slack_id
        )
        assert await state_rows(bot) == len(served)  # the person's state was used up


async def test_made_up_oauth_redirects_are_refused_quietly(tmp_path: Path) -> None:
    async with http_bot(tmp_path) as (_bot, sims), aiohttp.ClientSession() as session:
        url = sims.app_url + "/slack/oauth_redirect"
        with every_log_record() as logs:
            for number in range(200):
                query = {"code": "x", "state": f"made-up-{number}"}
                if number % 2:
                    query = {"error": f"access_denied-{number}" * 20}
                async with session.get(url, params=query) as response:
                    assert response.status < 500, response.status
        lines = [r for r in logs.records if "connection attempt failed" in r.getMessage()]
        assert len(lines) == 1, [r.getMessage() for r in lines]
        assert len(lines[0].getMessage()) < 200
        assert not any(record.exc_info for record in logs.records)
