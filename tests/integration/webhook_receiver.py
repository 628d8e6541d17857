"""A webhook receiver the tests control: what each path answers, and every request it got.

Signatures are checked here with the standard library only, from the Standard Webhooks text
(`v1,` + base64 HMAC-SHA256 of `id.timestamp.body` under the base64 key after `whsec_`), so a
bug shared with the bot's signing library cannot hide.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

TOLERANCE = 300


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether a request carries a valid, fresh Standard Webhooks signature for `secret`."""
    message_id = headers.get("webhook-id", "")
    timestamp = headers.get("webhook-timestamp", "")
    if not message_id or not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = headers.get("webhook-signature", "").split(" ")
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


@dataclass(frozen=True)
class Received:
    path: str
    webhook_id: str
    body: dict[str, Any]
    raw: bytes
    headers: dict[str, str]
    verified: bool
    at: float = 0.0
    """When it arrived (wall clock), to compare with the bot processes' logs."""

    @property
    def event_id(self) -> int:
        return int(self.webhook_id.removeprefix("evt_"))


Answer = Callable[[int], int | None]
"""From how many requests the path had before this one, a status (None: never answer)."""


def always(status: int) -> Answer:
    return lambda _count: status


def failing_first(times: int, status: int = 500) -> Answer:
    return lambda count: status if count < times else 200


def hanging() -> Answer:
    return lambda _count: None


class Receiver:
    """An aiohttp server on a loopback port; `start`/`stop` can be repeated (down, then up)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.answers: dict[str, Answer] = {}
        self.extra: dict[str, tuple[dict[str, str], bytes]] = {}
        """Headers and a body some paths answer with."""
        self.secrets: dict[str, str] = {}
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str, answer: Answer) -> None:
        self.answers[path] = answer

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._release.clear()

    async def stop(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        path = request.path
        count = len(self.at(path))
        headers = {k.lower(): v for k, v in request.headers.items()}
        secret = self.secrets.get(path)
        self.received.append(
            Received(
                path=path,
                webhook_id=headers.get("webhook-id", ""),
                body=json.loads(raw),
                raw=raw,
                headers=headers,
                verified=secret is not None and verify(secret, headers, raw),
                at=time.time(),
            )
        )
        status = self.answers.get(path, always(200))(count)
        if status is None:
            await self._release.wait()
            status = 503
        headers, content = self.extra.get(path, ({}, b""))
        return web.Response(status=status, headers=headers, body=content)
