"""The demo's webhook receiver: registered through the API, verifies each signature, counts."""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Final

import aiohttp
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bot.api.keys import ApiKeys, Scope
from bot.store import Store

PATH: Final = "/demo-webhook"
KEY_NAME: Final = "demo webhook receiver"
REMEMBERED: Final = 10_000
"""Recent webhook-ids kept to spot retries, and recent latencies kept for the percentiles."""


class DemoReceiver:
    """A receiver on 127.0.0.1, as a user's own system would be: it gets an API key and
    registers itself through `POST /api/v1/webhooks`, then checks every delivery's signature
    with the secret it was given (an independent verifier: the Standard Webhooks library, not
    the bot's sender) before it counts it."""

    def __init__(self, *, note: Callable[[str, str], None], names: Callable[[str], str]) -> None:
        self._note = note
        self._names = names
        self._verifier: Webhook | None = None
        self._runner: web.AppRunner | None = None
        self._seen: dict[str, None] = {}
        self.delivered = 0
        """Deliveries whose signature checked out, each webhook-id once."""
        self.refused = 0
        """Deliveries whose signature did not: answered 400 and not counted."""
        self.latencies: deque[float] = deque(maxlen=REMEMBERED)
        """Seconds from the change (the payload's timestamp) to its arrival here."""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post(PATH, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}{PATH}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def register(self, store: Store, api_url: str, url: str) -> str:
        """A key (as `rcstatus-bot api-key create` makes one), then the endpoint, over HTTP."""
        _, key = await ApiKeys(store).create(KEY_NAME, [Scope.WEBHOOKS_WRITE.value])
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{api_url}/api/v1/webhooks",
                json={"url": url, "description": "the demo's receiver"},
                headers={"Authorization": f"Bearer {key}"},
            ) as response,
        ):
            body = await response.json()
            if response.status != 201:
                raise RuntimeError(f"registering the demo's webhook: {response.status} {body}")
        self._verifier = Webhook(body["secret"])
        return str(body["id"])

    async def _receive(self, request: web.Request) -> web.Response:
        arrived = time.time()
        body = await request.read()
        if self._verifier is None:
            return web.Response(status=503)
        try:
            payload = self._verifier.verify(body, dict(request.headers))
        except (WebhookVerificationError, json.JSONDecodeError):
            self.refused += 1
            self._note("webhook: a delivery with a bad signature was refused", "bold red")
            return web.Response(status=400)
        message_id = request.headers["webhook-id"]
        if message_id in self._seen:
            return web.Response(status=204)  # a retry of one already counted
        self._seen[message_id] = None
        if len(self._seen) > REMEMBERED:
            del self._seen[next(iter(self._seen))]
        self.delivered += 1
        data = payload.get("data", {})
        changed = _seconds(str(payload.get("timestamp", "")))
        after = ""
        if changed is not None:
            self.latencies.append(max(0.0, arrived - changed))
            after = f", {(arrived - changed) * 1000:.0f} ms after the change"
        who = self._names(str(data.get("slack_user_id", "")))
        self._note(
            f"webhook ✓ signed: {who} {data.get('previous')} → {data.get('availability')}{after}",
            "dim",
        )
        return web.Response(status=204)


def _seconds(stamp: str) -> float | None:
    """Unix seconds of an RFC 3339 time such as 2026-01-02T03:04:05.678Z."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
