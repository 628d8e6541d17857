"""The /api/v1 web application: error shape, people, the gate and the OpenAPI document."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Container, Sequence
from typing import Any, Final

from aiohttp import web

from bot.api.errors import ApiError, error_response
from bot.api.gate import AvailabilityGate, TooManyWaiters
from bot.api.guard import ApiGuard
from bot.api.keys import Scope
from bot.api.openapi import openapi_document
from bot.api.people import ApiAvailability, PeopleView
from bot.api.stream import EventStream
from bot.store import StoreError

log = logging.getLogger(__name__)

API_PREFIX: Final = "/api/v1"
MAX_WAIT_SECONDS: Final = 60.0
DEFAULT_WAIT_SECONDS: Final = 30.0
DEFAULT_PAGE: Final = 100
MAX_PAGE: Final = 500

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STALE_HEADER: Final = "RCStatus-Stale-Seconds"


class AvailabilityApi:
    """The handlers; each authorizes first, then reads only memory (and who shares)."""

    def __init__(
        self,
        *,
        guard: ApiGuard,
        people: PeopleView,
        gate: AvailabilityGate,
        not_sharing: Container[str],
        stream: EventStream,
        extra_routes: Sequence[web.RouteDef] = (),
        clock: Callable[[], float] = time.monotonic,
        staleness: Callable[[], float] = lambda: 0.0,
        stale_after: float = 10.0,
    ) -> None:
        self._guard = guard
        self._people = people
        self._gate = gate
        self._not_sharing = not_sharing
        self._stream = stream
        self._extra_routes = extra_routes
        self._clock = clock
        self._staleness = staleness
        self._stale_after = stale_after

    def application(self) -> web.Application:
        """A sub-application to mount at API_PREFIX."""
        app = web.Application(middlewares=[_json_errors])
        app.add_routes(
            [
                web.get("/people", self.list_people),
                web.get("/people/{ref}", self.get_person),
                web.get("/openapi.json", self.openapi),
                *self._extra_routes,
            ]
        )
        self._stream.install(app)
        return app

    async def get_person(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.AVAILABILITY_READ)
        query = request.query
        wait = query.get("wait")
        if wait is not None and wait != "available":
            raise ApiError(400, "invalid_request", "wait must be 'available'.")
        timeout = _timeout(query.get("timeout")) if wait is not None else 0.0
        user_id = self._people.resolve(request.match_info["ref"])
        if user_id is None:
            raise ApiError(404, "not_found", "Nobody here matches that reference.")
        state = self._people.state(user_id, self._not_sharing)
        deadline = self._clock() + timeout
        while not state.reachable and (remaining := deadline - self._clock()) > 0:
            try:
                await self._gate.wait(user_id, remaining)
            except TooManyWaiters:
                raise ApiError(
                    503,
                    "busy",
                    "Too many requests are waiting at the gate; retry shortly.",
                    {"Retry-After": "1"},
                ) from None
            state = self._people.state(user_id, self._not_sharing)
        return web.json_response(state.as_json(), headers=self._freshness())

    async def list_people(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.AVAILABILITY_READ)
        query = request.query
        wanted = _availabilities(query.getall("availability", []))
        limit = _limit(query.get("limit"))
        after = _decode_cursor(query.get("cursor"))
        not_sharing = self._not_sharing
        page: list[dict[str, Any]] = []
        more = False
        for user_id in self._people.everyone():
            if after is not None and user_id <= after:
                continue
            state = self._people.state(user_id, not_sharing)
            if wanted and state.availability not in wanted:
                continue
            if len(page) == limit:
                more = True
                break
            page.append(state.as_json())
        next_cursor = _encode_cursor(page[-1]["slack_user_id"]) if more and page else None
        return web.json_response(
            {"people": page, "next_cursor": next_cursor}, headers=self._freshness()
        )

    def _freshness(self) -> dict[str, str]:
        """A replica cut off from the leader answers from memory, and says how old it is."""
        stale = self._staleness()
        if stale < self._stale_after:
            return {}
        return {STALE_HEADER: str(int(stale))}

    async def openapi(self, request: web.Request) -> web.Response:
        # The contract holds no one's data, but it is ours to give to callers we know.
        await self._guard.authorize(request, Scope.AVAILABILITY_READ)
        return web.json_response(openapi_document())


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure in the API is the one JSON shape; never a stack trace."""
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except web.HTTPException as exc:
        if exc.status == 404:
            return error_response(404, "not_found", "No such API endpoint.")
        if exc.status == 405:
            # aiohttp's exception carries its own Content-Type; only Allow belongs on ours.
            allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
            return error_response(
                405, "method_not_allowed", "That method is not allowed here.", allow
            )
        return error_response(exc.status, "http_error", exc.reason)
    except StoreError as exc:
        log.warning("an API request could not be answered: %s", exc)
        return error_response(
            503,
            "unavailable",
            "The database is unreachable; retry shortly.",
            {"Retry-After": "5"},
        )
    except Exception:
        log.exception("an API request failed")
        return error_response(500, "internal_error", "Something went wrong on our side.")


def _timeout(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_WAIT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_WAIT_SECONDS:  # also refuses nan and inf
        raise ApiError(
            400,
            "invalid_request",
            f"timeout must be a number of seconds, 0 to {MAX_WAIT_SECONDS:g}.",
        )
    return value


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:
        raise ApiError(400, "invalid_request", f"limit must be a whole number, 1 to {MAX_PAGE}.")
    return int(raw)


def _availabilities(raw: list[str]) -> set[ApiAvailability]:
    wanted: set[ApiAvailability] = set()
    for item in raw:
        for value in item.split(","):
            try:
                wanted.add(ApiAvailability(value.strip()))
            except ValueError:
                known = ", ".join(a.value for a in ApiAvailability)
                raise ApiError(
                    400, "invalid_request", f"availability must be one of {known}."
                ) from None
    return wanted


def _encode_cursor(user_id: str) -> str:
    return base64.urlsafe_b64encode(f"after:{user_id}".encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> str | None:
    if not raw:  # a client that writes `cursor=` for its first page means "from the start"
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if not decoded.startswith("after:") or len(decoded) > 64:
        raise ApiError(400, "invalid_request", "cursor is not one this API gave out.")
    return decoded.removeprefix("after:")
