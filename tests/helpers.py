"""Test helpers shared across the suite: waiting on conditions, JSON over loopback HTTP."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp


async def wait_until(
    predicate: Callable[[], object | Awaitable[object]],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    message: str = "condition",
) -> None:
    """Poll `predicate` until it is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class ControlClient:
    """Talks to a simulator's `/_sim/` control API the way a test author would with curl."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession) -> None:
        self.base = base_url.rstrip("/") + "/_sim/"
        self.session = session

    async def get(self, path: str) -> Any:
        async with self.session.get(self.base + path) as response:
            response.raise_for_status()
            return await response.json()

    async def post(self, path: str, body: Any = None) -> Any:
        async with self.session.post(self.base + path, json=body or {}) as response:
            response.raise_for_status()
            if response.content_type == "application/json":
                return await response.json()
            return await response.text()
