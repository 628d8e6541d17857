"""The /api/v1/webhooks endpoints: register, change and remove receivers, see and retry deliveries.

A signing secret is returned once, in the answer that creates the endpoint, and never again:
not in a listing, not in a log line. The store keeps it as given, because signing each delivery
needs the secret itself (a hash would not do); it is protected like the Slack tokens beside it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Container
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from aiohttp import web

from bot.api.errors import ApiError
from bot.api.guard import ApiGuard
from bot.api.keys import Scope
from bot.api.people import REF_LIMIT, ApiAvailability, rfc3339
from bot.store import Store
from bot.store.webhooks import WebhookDelivery, WebhookEndpoint
from bot.webhooks.dispatcher import MAX_ENDPOINTS, message_id
from bot.webhooks.safety import Resolve, UnsafeUrl, check_resolves, check_url, system_resolve
from bot.webhooks.sender import AttemptResult, new_secret

BODY_LIMIT: Final = 16_384
PEOPLE_LIMIT: Final = 1000
DESCRIPTION_LIMIT: Final = 500
DEFAULT_PAGE: Final = 50
MAX_PAGE: Final = 200
_ID: Final = re.compile(r"wh_[0-9a-f]{16}")
_EVENT_ID: Final = re.compile(r"[0-9]{1,10}")
DESCRIPTION_PATTERN: Final = "^[^\\x00-\\x1f\\x7f-\\x9f]*$"
"""What a description may hold, as the API document states it: no control characters."""
DESCRIPTION: Final = re.compile(DESCRIPTION_PATTERN)
_SURROGATE: Final = re.compile("[\\ud800-\\udfff]")
_CREATE_FIELDS: Final = frozenset({"url", "people", "availability", "description"})
_UPDATE_FIELDS: Final = _CREATE_FIELDS | {"enabled"}


class Dispatcher(Protocol):
    """The dispatcher as the API uses it: told of endpoint changes, asked to ping one."""

    def endpoints_changed(self) -> None: ...
    async def ping(self, endpoint: WebhookEndpoint) -> tuple[str, AttemptResult]: ...


class References(Protocol):
    def resolve(self, ref: str) -> str | None: ...


class WebhookApi:
    """The handlers; each authorizes (scope webhooks:write) before it reads the request."""

    def __init__(
        self,
        *,
        guard: ApiGuard,
        store: Store,
        people: References,
        dispatcher: Dispatcher,
        team_id: str,
        allow_private: bool,
        recorded: Callable[[], Awaitable[None]],
        resolve: Callable[[], Resolve] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._guard = guard
        self._store = store
        self._people = people
        self._dispatcher = dispatcher
        self._team_id = team_id
        self._allow_private = allow_private
        self._recorded = recorded
        self._clock = clock
        self._resolve = resolve or (lambda: system_resolve(asyncio.get_running_loop()))

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/webhooks", self.create),
            web.get("/webhooks", self.list_all),
            web.get("/webhooks/{id}", self.get),
            web.patch("/webhooks/{id}", self.update),
            web.delete("/webhooks/{id}", self.delete),
            web.get("/webhooks/{id}/deliveries", self.deliveries),
            web.post("/webhooks/{id}/deliveries/{event_id}/retry", self.retry),
            web.post("/webhooks/{id}/ping", self.ping),
        ]

    # ----------------------------------------------------------------------------- handlers

    async def create(self, request: web.Request) -> web.Response:
        key = await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        body = await _body(request, _CREATE_FIELDS)
        if "url" not in body:
            raise _invalid("url is required.")
        url = await self._url(body["url"])
        people = self._people_filter(body.get("people"))
        availability = _availability_filter(body.get("availability"))
        description = _description(body.get("description", ""))
        secret = new_secret()
        # A new endpoint starts after the latest change recorded: first record every change
        # already known, so none from before it was made is sent to it.
        await self._recorded()
        endpoint = await self._store.add_webhook(
            endpoint_id="wh_" + secrets.token_hex(8),
            team_id=self._team_id,
            url=url,
            secret=secret,
            people=people,
            availability=availability,
            description=description,
            created_by=key.id,
            max_endpoints=MAX_ENDPOINTS,
        )
        if endpoint is None:
            raise ApiError(
                409,
                "too_many_webhooks",
                f"This workspace has {MAX_ENDPOINTS} webhooks already; delete one first.",
            )
        self._dispatcher.endpoints_changed()
        return web.json_response(
            {**_endpoint_json(endpoint), "secret": secret},
            status=201,
            headers={"Location": f"{request.path}/{endpoint.id}"},
        )

    async def list_all(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoints = await self._store.webhooks(self._team_id)
        return web.json_response({"webhooks": [_endpoint_json(e) for e in endpoints]})

    async def get(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoint = await self._endpoint(request)
        return web.json_response(_endpoint_json(endpoint))

    async def update(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoint = await self._endpoint(request)
        body = await _body(request, _UPDATE_FIELDS)
        changes: dict[str, Any] = {}
        if "url" in body:
            changes["url"] = await self._url(body["url"])
        if "people" in body:
            changes["people"] = self._people_filter(body["people"])
        if "availability" in body:
            changes["availability"] = _availability_filter(body["availability"])
        if "description" in body:
            changes["description"] = _description(body["description"])
        enabled = body.get("enabled")
        if "enabled" in body and not isinstance(enabled, bool):
            raise _invalid("enabled must be true or false.")
        updated = await self._store.update_webhook(
            self._team_id, endpoint.id, enabled=enabled, **changes
        )
        if updated is None:
            raise _not_found()
        self._dispatcher.endpoints_changed()
        return web.json_response(_endpoint_json(updated))

    async def delete(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoint = await self._endpoint(request)
        if not await self._store.delete_webhook(self._team_id, endpoint.id):
            raise _not_found()
        self._dispatcher.endpoints_changed()
        return web.Response(status=204)

    async def deliveries(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoint = await self._endpoint(request)
        limit = _limit(request.query.get("limit"))
        before = _decode_cursor(request.query.get("cursor"))
        rows = await self._store.webhook_deliveries(endpoint.id, before_id=before, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        return web.json_response(
            {
                "deliveries": [_delivery_json(d) for d in page],
                "next_cursor": _encode_cursor(page[-1].id) if more and page else None,
            }
        )

    async def retry(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoint = await self._endpoint(request)
        raw = request.match_info["event_id"]
        if not _EVENT_ID.fullmatch(raw):
            raise ApiError(404, "not_found", "This webhook has no delivery of that event.")
        now = datetime.fromtimestamp(self._clock(), UTC)
        delivery = await self._store.retry_delivery(endpoint.id, int(raw), now)
        if delivery is None:
            raise ApiError(404, "not_found", "This webhook has no delivery of that event.")
        self._dispatcher.endpoints_changed()
        return web.json_response(_delivery_json(delivery), status=202)

    async def ping(self, request: web.Request) -> web.Response:
        await self._guard.authorize(request, Scope.WEBHOOKS_WRITE)
        endpoint = await self._endpoint(request)
        ping_id, result = await self._dispatcher.ping(endpoint)
        return web.json_response(
            {
                "webhook_id": ping_id,
                "delivered": result.ok,
                "status_code": result.status,
                "error": result.error,
            }
        )

    # ----------------------------------------------------------------------------- parts

    async def _endpoint(self, request: web.Request) -> WebhookEndpoint:
        endpoint_id = request.match_info["id"]
        if not _ID.fullmatch(endpoint_id):
            raise _not_found()
        endpoint = await self._store.webhook(self._team_id, endpoint_id)
        if endpoint is None:
            raise _not_found()
        return endpoint

    async def _url(self, raw: object) -> str:
        if not isinstance(raw, str):
            raise _invalid("url must be a string.")
        try:
            url = check_url(raw, allow_private=self._allow_private)
            await check_resolves(url, allow_private=self._allow_private, resolve=self._resolve())
        except UnsafeUrl as refused:
            raise _invalid(str(refused)) from None
        return url

    def _people_filter(self, raw: object) -> list[str] | None:
        if raw is None:
            return None
        if not isinstance(raw, list) or not 1 <= len(raw) <= PEOPLE_LIMIT:
            raise _invalid(f"people must be null or a list of 1 to {PEOPLE_LIMIT} references.")
        found: list[str] = []
        for ref in raw:
            if not isinstance(ref, str) or not 1 <= len(ref) <= REF_LIMIT:
                raise _invalid("each of people must be a Slack user id, email or extension.")
            user_id = self._people.resolve(ref)
            if user_id is None:
                shown = ref if ref.isprintable() and len(ref) <= 64 else "one reference"
                raise _invalid(f"people: nobody here matches {shown!r}.")
            if user_id not in found:
                found.append(user_id)
        return found


def _availability_filter(raw: object) -> list[str] | None:
    if raw is None:
        return None
    known = [a.value for a in ApiAvailability]
    if (
        not isinstance(raw, list)
        or not 1 <= len(raw) <= len(known)
        or not all(isinstance(v, str) and v in known for v in raw)
    ):
        raise _invalid(f"availability must be null or a list of {', '.join(known)}.")
    return [v for v in known if v in raw]


def _description(raw: object) -> str:
    # Any text but control characters: emoji sequences (joiners are format characters) and
    # letters newer than this Python's Unicode tables are text too. A lone surrogate is not
    # text at all, and could not be stored.
    if (
        not isinstance(raw, str)
        or len(raw) > DESCRIPTION_LIMIT
        or not DESCRIPTION.fullmatch(raw)
        or _SURROGATE.search(raw)
    ):
        raise _invalid(
            f"description must be text of at most {DESCRIPTION_LIMIT} characters, "
            "without control characters."
        )
    return raw.strip()


async def _body(request: web.Request, allowed: Container[str]) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > BODY_LIMIT:
        raise _too_large()
    raw = bytearray()
    while len(raw) <= BODY_LIMIT:
        part = await request.content.read(BODY_LIMIT + 1 - len(raw))
        if not part:
            break
        raw += part
    if len(raw) > BODY_LIMIT:
        raise _too_large()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise _invalid("The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise _invalid("The body must be a JSON object.")
    unknown = sorted(str(k)[:40] for k in body if k not in allowed)
    if unknown:
        raise _invalid(f"Unknown fields: {', '.join(unknown)}.")
    return body


def _endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "people": list(endpoint.people) if endpoint.people is not None else None,
        "availability": list(endpoint.availability) if endpoint.availability is not None else None,
        "description": endpoint.description,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_by": endpoint.created_by,
        "created_at": rfc3339(endpoint.created_at),
        "updated_at": rfc3339(endpoint.updated_at),
    }


def _delivery_json(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "event_id": delivery.event_id,
        "webhook_id": message_id(delivery.event_id),
        "slack_user_id": delivery.user_id,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status,
        "last_error": delivery.last_error,
        "next_attempt_at": rfc3339(delivery.next_attempt_at),
        "created_at": rfc3339(delivery.created_at),
        "finished_at": rfc3339(delivery.finished_at),
    }


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE
    if not _EVENT_ID.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise _invalid(f"limit must be a whole number, 1 to {MAX_PAGE}.")
    return int(raw)


def _encode_cursor(delivery_id: int) -> str:
    return base64.urlsafe_b64encode(f"before:{delivery_id}".encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> int | None:
    if not raw:
        # As on /people: absent or empty is the first page.
        return None
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    number = decoded.removeprefix("before:")
    if not decoded.startswith("before:") or not _EVENT_ID.fullmatch(number):
        raise _invalid("cursor is not one this API gave out.")
    return int(number)


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "No webhook has that id.")


def _too_large() -> ApiError:
    return ApiError(413, "too_large", f"The body must be at most {BODY_LIMIT} bytes.")
