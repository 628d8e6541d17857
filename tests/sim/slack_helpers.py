"""Helpers for the Slack simulator tests: a running sim, its control API, a served app."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp import web

from bot.sim.company import build_company
from bot.sim.limits import TimeScale
from bot.sim.slack import SlackSimulator

# A simulated minute passes in one real second.
FAST = TimeScale(60.0)


def closed_port_url() -> str:
    """A local URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@asynccontextmanager
async def running_sim(users: int = 12, **options: Any) -> AsyncIterator[SlackSimulator]:
    """A started simulator; its app URL points nowhere until a test serves an app."""
    options.setdefault("time_scale", FAST)
    options.setdefault("app_url", closed_port_url())
    sim = SlackSimulator(build_company(users, seed=7), **options)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[str]:
    """Serve an aiohttp application on a free port; yields its base URL."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def control(sim: SlackSimulator, verb: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call the simulator's control API over HTTP, as the demo and other processes do."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(verb, sim.url + path, json=body) as response,
    ):
        return response.status, await response.json()


async def authorize_code(
    sim: SlackSimulator, user_id: str, user_scope: str, scope: str = "", state: str = "s1"
) -> str:
    """Walk the authorize page as `user_id` and return the code it redirects with."""
    params = {
        "client_id": sim.client_id,
        "scope": scope,
        "user_scope": user_scope,
        "state": state,
        "sim_user": user_id,
    }
    async with (
        aiohttp.ClientSession() as session,
        session.get(sim.authorize_url, params=params, allow_redirects=False) as response,
    ):
        assert response.status == 302, await response.text()
        query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["state"] == [state]
    return query["code"][0]
