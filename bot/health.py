"""/healthz (liveness: the process and its loop answer) and /readyz (readiness: connected)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

Readiness = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
"""Whether the bot is ready, with what it found (and, when not, a `reason`)."""

STARTING_RETRY_AFTER: Final = 5
"""Seconds a request that arrives while the bot is starting is asked to wait."""
ALWAYS_OPEN: Final = frozenset({"/healthz", "/readyz", "/metrics"})


class Health:
    """Serves both probes, and holds other requests at the door until the bot has started.

    Liveness never looks at RingCentral, Slack or the database: a probe that fails while the bot
    is still connecting (or while a dependency is down) would only make the platform restart a
    process that is doing the right thing. If the loop is wedged, the probe is not answered.
    """

    def __init__(
        self,
        readiness: Readiness,
        clock: Callable[[], float] = time.monotonic,
        identity: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._readiness = readiness
        self._identity = identity
        self._clock = clock
        self._born = clock()
        self.phase = "starting"
        self.started = False

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/healthz", self._live), web.get("/readyz", self._ready)]

    def gate(self, open_paths: Collection[str] = ALWAYS_OPEN) -> Middleware:
        """Middleware: until `started`, every other path answers 503 with Retry-After."""

        @web.middleware
        async def starting_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if self.started or request.path in open_paths:
                return await handler(request)
            return web.json_response(
                {"error": "starting", "message": f"The bot is starting ({self.phase})."},
                status=503,
                headers={"Retry-After": str(STARTING_RETRY_AFTER)},
            )

        return starting_gate

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "alive": True,
                "started": self.started,
                "phase": self.phase,
                "uptime_seconds": round(self._clock() - self._born, 1),
                # Which part this replica plays (leader or follower), and since when.
                **(self._identity() if self._identity is not None else {}),
            }
        )

    async def _ready(self, request: web.Request) -> web.Response:
        ok, details = await self._readiness()
        details["checked_at"] = datetime.now(UTC).isoformat()
        return web.json_response(details, status=200 if ok else 503)
