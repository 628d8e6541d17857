"""Who may call the API: the bearer key, its scope, then its request budget, in that order."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

from aiohttp import web
from cachetools import LRUCache

from bot.api.errors import ApiError
from bot.api.keys import ApiKeys, Scope
from bot.store import ApiKeyRecord

BUDGET_KEYS: Final = 10_000
"""Keys whose budgets are tracked at once; a forgotten key's bucket simply starts full again."""
AUTH_HEADER_LIMIT: Final = 200


class RequestBudget:
    """A token bucket per key: `per_minute` requests a minute, in bursts of up to a minute's."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: LRUCache[str, tuple[float, float]] = LRUCache(maxsize=BUDGET_KEYS)

    def spend(self, key_id: str) -> float:
        """0 when the request may go ahead, else the seconds until it could."""
        now = self._clock()
        tokens, at = self._buckets.get(key_id, (self._capacity, now))
        tokens = min(self._capacity, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self._rate
        self._buckets[key_id] = (tokens - 1.0, now)
        return 0.0


class ApiGuard:
    """Checks a request's `Authorization: Bearer KEY` before any handler parses anything."""

    def __init__(self, keys: ApiKeys, budget: RequestBudget) -> None:
        self._keys = keys
        self._budget = budget

    async def authorize(self, request: web.Request, scope: Scope) -> ApiKeyRecord:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if len(header) > AUTH_HEADER_LIMIT or scheme.lower() != "bearer" or not key.strip():
            raise ApiError(
                401,
                "unauthorized",
                "Send an API key as 'Authorization: Bearer KEY' (rcstatus-bot api-key create).",
                {"WWW-Authenticate": 'Bearer realm="rcstatus"'},
            )
        record = await self._keys.authenticate(key.strip())
        if record is None:
            raise ApiError(
                401,
                "unauthorized",
                "This API key is unknown or revoked.",
                {"WWW-Authenticate": 'Bearer realm="rcstatus", error="invalid_token"'},
            )
        if scope.value not in record.scopes:
            raise ApiError(
                403,
                "forbidden",
                f"This API key lacks the {scope.value} scope.",
                {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope.value}"'},
            )
        wait = self._budget.spend(record.id)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                "This API key has used its request budget; retry after the given seconds.",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return record
